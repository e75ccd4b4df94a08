"""Files the adapter writes for suppliers: complete or not at all (a partner polling the folder never
reads half a document)."""

import os
from pathlib import Path


def write_atomically(folder: Path, name: str, content: bytes) -> Path:
    """Write `content` to folder/name through a hidden temporary file and a rename (atomic on one file
    system), fsynced, so a crash leaves the old file or the new one. Writing the same name again
    replaces it: a retried send writes the identical document."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    temporary = folder / f".{name}.tmp"
    with open(temporary, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, target)
    return target

"""deploy/local's scripts, loaded for unit tests. The folder is not a package, and its services.py would
shadow the `services` package, so they are loaded by path."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

LOCAL = Path(__file__).resolve().parents[2] / "deploy" / "local"


def load(name: str) -> ModuleType:
    if str(LOCAL) not in sys.path:
        sys.path.append(str(LOCAL))  # services.py imports infra.py as `infra`
    spec = importlib.util.spec_from_file_location(f"backorder_local_{name}", LOCAL / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module

"""Where a benchmark step's CPU went: user + system time per group of processes, read from /proc.

The groups are the fleet's services (by pid), PostgreSQL's backends by database (`postgres: user db ...`,
as PostgreSQL titles them) and its own background processes, the Kafka broker (the JVM running
kafka.Kafka), the benchmark itself, and everything else. A sample is every process's time; the difference
of two samples is what each group used in between. A process that exited in between is missed (its time
is gone from /proc), so short-lived processes are under-counted; the services, the broker and the pooled
backends live through a step.
"""

import contextlib
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process used so far, or None if it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    return None


def _group(pid: int, named: Mapping[int, str]) -> str:
    if pid in named:
        return named[pid]
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    title = args[0].decode(errors="replace")
    if title.startswith("postgres: "):
        words = title.split()
        # a backend is titled "postgres: <user> <database> <client> <state>"; background ones by their role
        return f"postgres {words[2]}" if len(words) >= 4 and "(" in words[3] else "postgres (background)"
    if title.endswith("/postgres"):
        return "postgres (background)"
    if b"kafka.Kafka" in args:
        return "kafka"
    return "other"


Sample = dict[int, tuple[str, float]]  # pid -> (group, CPU seconds so far)


def sample(named: Mapping[int, str]) -> Sample:
    """Every process's group and CPU seconds; `named` gives the group of known pids (the services)."""
    taken: Sample = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            pid = int(entry.name)
            seconds = process_seconds(pid)
            if seconds is not None:
                taken[pid] = (_group(pid, named), seconds)
    return taken


def used_between(before: Sample, after: Sample) -> Counter[str]:
    """CPU seconds per group between two samples (a process born in between counts from zero)."""
    used: Counter[str] = Counter()
    for pid, (group, seconds) in after.items():
        used[group] += seconds - before.get(pid, (group, 0.0))[1]
    return used


def cpu_table(used: Mapping[str, float], orders: int, wall: float) -> str:
    """Per group: CPU ms per completed order and the share of one core, largest first."""
    total = sum(used.values())
    lines = [f"CPU per completed order ({orders:,} orders, {wall:.0f} s): ms/order   % of one core"]
    for group, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.05:
            lines.append(f"  {group:<34} {seconds * 1000 / orders:>9.2f} {seconds * 100 / wall:>12.0f}")
    lines.append(f"  {'all':<34} {total * 1000 / orders:>9.2f} {total * 100 / wall:>12.0f}")
    return "\n".join(lines)

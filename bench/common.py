"""What the benchmark scripts share: a process's memory as Linux reports it, and writing a results file."""

from __future__ import annotations

import json
from pathlib import Path


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's resident memory in MB from /proc: ``VmHWM`` its peak so far, ``VmRSS`` now (NaN elsewhere)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_results(results: dict, path: str | Path) -> Path:
    """The results JSON (config, versions, every figure), its folder made if needed; says where it went."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return out

"""What made a result: library versions, platform and git commit, recorded in every result file."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# The distributions whose versions change results; callers add their own (backtesting, vectorbt, ray ...).
CORE_DISTRIBUTIONS = (
    "ea-bridge",
    "numpy",
    "pandas",
    "pyzmq",
    "torch",
    "transformers",
    "peft",
    "safetensors",
    "onnx",
    "onnxruntime",
    "matplotlib",
)


def library_versions(*extra: str) -> dict[str, str]:
    """Python, platform, CPU count and the installed versions of the core distributions plus ``extra``."""
    out = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
    }
    for dist in (*CORE_DISTRIBUTIONS, *extra):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_commit() -> str:
    """The project's commit, with ``-dirty`` when tracked files changed; ``unknown`` outside a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def default_results_dir(name: str) -> Path:
    """Where a benchmark writes when ``--out`` is not given: outside the checkout, so a run never overwrites the
    committed results under ``bench/results`` (``$EA_BRIDGE_RESULTS`` or the system's temporary folder)."""
    import tempfile

    base = os.environ.get("EA_BRIDGE_RESULTS") or Path(tempfile.gettempdir()) / "ea-bridge-results"
    return Path(base) / name

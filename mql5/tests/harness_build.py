"""Build the MQL5 harness: rewrite the EA's sources to C++ and compile the test programs with g++ against libzmq.

libzmq comes from the system (Debian's ``libzmq3-dev``, which ``scripts/setup.sh`` installs) when present, else from
the copy bundled in the pyzmq wheel (``pyzmq.libs/libzmq-*.so*``). The system library is preferred because it is a
separate build from the one inside the Python server, as the terminal's libzmq.dll is. No header is needed: the EA's ``#import`` declarations become the
prototypes. Used by ``test_mql5_harness.py`` and ``bench_roundtrip.py``.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MQL5 = HERE.parent
BUILD = HERE / "build"
PROGRAMS = ("test_json", "test_trader", "test_live", "test_export_bars", "test_export_calendar")
# -Wconversion -Wsign-conversion: the implicit narrowing MetaEditor warns about ("possible loss of data due to type
# conversion", "sign mismatch") fails the warnings test. Exempt (see harness.h): mql5compat.h and the test programs'
# own code, which are harness C++, not MQL5.
CXXFLAGS = ["-std=c++17", "-O1", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion"]
# Checked at compile time only (-fsyntax-only): the Windows x64 layout of zmq_pollitem_t (abi_windows.cpp).
STATIC_CHECKS = ("abi_windows",)

sys.path.insert(0, str(HERE))
import mql5_to_cpp  # noqa: E402


@dataclass
class Libzmq:
    link: list[str]  # what goes on the g++ command line
    origin: str  # where it came from, for messages


def find_libzmq() -> Libzmq | None:
    """The libzmq to link: the system's first, then pyzmq's bundled copy; None when neither exists."""
    if ctypes.util.find_library("zmq"):
        return Libzmq(["-lzmq"], "system libzmq")
    try:
        import zmq

        site = Path(zmq.__file__).resolve().parents[1]
        for pattern in ("pyzmq.libs/libzmq*.so*", "zmq/.libs/libzmq*.so*"):
            found = sorted(glob.glob(str(site / pattern)))
            if found:
                lib = Path(found[0])
                return Libzmq([str(lib), f"-Wl,-rpath,{lib.parent}"], f"pyzmq wheel ({lib.name})")
    except ImportError:
        pass
    return None


def why_not_buildable() -> str | None:
    """A reason the harness cannot be built here, or None."""
    if shutil.which("g++") is None:
        return "g++ not found: install a C++ compiler (Debian: apt-get install g++)"
    if find_libzmq() is None:
        return "libzmq not found: pip install pyzmq (it bundles libzmq) or apt-get install libzmq3-dev"
    return None


@dataclass
class Build:
    root: Path
    programs: dict[str, Path]
    diagnostics: dict[str, str]  # compiler output per program (warnings), empty when clean
    libzmq: Libzmq


def build(out: Path = BUILD, mql5_root: Path = MQL5) -> Build:
    """Rewrite the sources into ``out/src`` and compile every test program into ``out`` (in parallel).

    ``mql5_root`` is the folder holding ``Experts/``, ``Include/`` and ``Scripts/``: another copy of the EA (an older
    commit, say) can be built against this harness to show what a test would have caught.
    """
    lib = find_libzmq()
    if lib is None:
        raise RuntimeError(why_not_buildable())
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    mql5_to_cpp.rewrite_tree(Path(mql5_root), src)
    out.mkdir(parents=True, exist_ok=True)

    def compile_one(name: str) -> tuple[str, str]:
        cmd = ["g++", *CXXFLAGS, f"-I{HERE}", f"-I{src / 'Include'}", f"-I{src}", "-x", "c++", str(HERE / f"{name}.cpp")]  # fmt: skip
        if name in STATIC_CHECKS:
            cmd += ["-fsyntax-only"]
        else:
            cmd += ["-x", "none", *lib.link, "-o", str(out / name)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"g++ failed for {name}:\n{proc.stderr[-6000:]}")
        return name, proc.stderr

    jobs = min(len(PROGRAMS), max(1, (os.cpu_count() or 1)))
    with ThreadPoolExecutor(jobs) as pool:
        results = dict(pool.map(compile_one, PROGRAMS + STATIC_CHECKS))
    return Build(out, {p: out / p for p in PROGRAMS}, results, lib)

"""Install the EA Bridge Expert Advisor into a MetaTrader 5 terminal's data folder.

    python -m bridge.install_ea --data-folder "C:/Users/me/AppData/Roaming/MetaQuotes/Terminal/<id>"
    python -m bridge.install_ea --data-folder PATH --dll path/to/libzmq.dll   # also install the DLL
    python -m bridge.install_ea --data-folder PATH --dry-run                  # show what would be copied

The data folder is the one MetaTrader opens with File > Open Data Folder (it holds ``MQL5``). The command copies the
Expert Advisor, its include files and the two export scripts into ``MQL5/Experts``, ``MQL5/Include/EABridge`` and
``MQL5/Scripts``, then checks that ``MQL5/Libraries/libzmq.dll`` is there and is a 64-bit build (MetaTrader 5 is a
64-bit program and cannot load a 32-bit DLL). Where the Strategy Tester's local agents live beside the terminal
(``../../Tester/<id>/Agent-*``), the DLL is copied into their ``MQL5/Libraries`` too: tester agents load DLLs from
their own folder. Files whose content is unchanged are left alone.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bridge.cli import HelpFormatter
from bridge.errors import UserError, run_main

SOURCE = Path(__file__).resolve().parents[1] / "mql5"
DLL_NAME = "libzmq.dll"
DLL_HELP = (
    "get a 64-bit libzmq build: the x64 zip of a release at https://github.com/zeromq/libzmq/releases "
    "(e.g. libzmq-v142-x64-4_3_5.zip; take libzmq-v142-mt-4_3_5.dll) or vcpkg's `vcpkg install zeromq:x64-windows`, "
    f"rename it to {DLL_NAME}, and rerun with --dll PATH (or copy it to MQL5\\Libraries yourself)"
)
# IMAGE_FILE_MACHINE_* values in a PE header
_MACHINES = {0x8664: "64-bit x86-64", 0xAA64: "64-bit ARM64", 0x014C: "32-bit x86"}


@dataclass
class Plan:
    """What to copy where, and what was found missing or wrong."""

    copies: list[tuple[Path, Path]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def mql5_folder(data_folder: Path) -> Path:
    """The terminal's ``MQL5`` folder for a data folder (or for the ``MQL5`` folder itself)."""
    data_folder = Path(data_folder).expanduser()
    if not data_folder.is_dir():
        raise UserError(
            "data folder not found",
            path=data_folder,
            hint="in MetaTrader use File > Open Data Folder and pass that folder",
        )
    if (data_folder / "MQL5").is_dir():
        return data_folder / "MQL5"
    if data_folder.name.lower() == "mql5" and (data_folder / "Experts").is_dir():
        return data_folder
    raise UserError(
        "not a MetaTrader 5 data folder: it has no MQL5 folder",
        path=data_folder,
        hint="in MetaTrader use File > Open Data Folder; that folder contains MQL5",
    )


def dll_machine(path: Path) -> str:
    """The architecture a Windows DLL was built for, from its PE header; raises ``UserError`` if it is not a DLL."""
    data = Path(path).read_bytes()[:4096]
    if len(data) < 64 or data[:2] != b"MZ":
        raise UserError("not a Windows DLL (no MZ header)", path=path, hint=DLL_HELP)
    (pe,) = struct.unpack_from("<I", data, 0x3C)
    if pe + 6 > len(data) or data[pe : pe + 4] != b"PE\0\0":
        raise UserError("not a Windows DLL (no PE header)", path=path, hint=DLL_HELP)
    (machine,) = struct.unpack_from("<H", data, pe + 4)
    return _MACHINES.get(machine, f"unknown machine 0x{machine:04x}")


def tester_library_folders(mql5: Path) -> list[Path]:
    """``MQL5/Libraries`` of the local tester agents that belong to this terminal, where they exist."""
    data_folder = mql5.parent
    tester = data_folder.parent.parent / "Tester" / data_folder.name
    if not tester.is_dir():
        return []
    return sorted(p / "MQL5" / "Libraries" for p in tester.glob("Agent-*") if (p / "MQL5").is_dir())


def plan_install(data_folder: Path, dll: Path | None = None, source: Path = SOURCE) -> Plan:
    """Work out the copies for ``data_folder`` and check the DLL; changes nothing."""
    mql5 = mql5_folder(data_folder)
    if not (source / "Experts" / "EABridge.mq5").is_file():
        raise UserError(
            "the EA's MQL5 sources are not beside this package",
            path=source,
            hint="run from a checkout of the project (the mql5 folder is not part of the wheel)",
        )
    plan = Plan()
    plan.copies.append((source / "Experts" / "EABridge.mq5", mql5 / "Experts" / "EABridge.mq5"))
    for f in sorted((source / "Include" / "EABridge").glob("*.mqh")):
        plan.copies.append((f, mql5 / "Include" / "EABridge" / f.name))
    for f in sorted((source / "Scripts").glob("*.mq5")):
        plan.copies.append((f, mql5 / "Scripts" / f.name))
    installed = mql5 / "Libraries" / DLL_NAME
    if dll is not None:
        dll = Path(dll).expanduser()
        if not dll.is_file():
            raise UserError("DLL not found", path=dll, hint=DLL_HELP)
        machine = dll_machine(dll)
        if not machine.startswith("64-bit"):
            raise UserError(
                f"this DLL is {machine}; MetaTrader 5 needs a 64-bit build", path=dll, hint=DLL_HELP
            )
        plan.copies.append((dll, installed))
        source_dll = dll
    elif installed.is_file():
        machine = dll_machine(installed)
        if not machine.startswith("64-bit"):
            plan.problems.append(f"{installed} is {machine}; MetaTrader 5 needs a 64-bit build: {DLL_HELP}")
        source_dll = installed
    else:
        plan.problems.append(f"{DLL_NAME} is missing from {installed.parent}: {DLL_HELP}")
        source_dll = None
    agents = tester_library_folders(mql5)
    if source_dll is not None:
        for lib in agents:
            plan.copies.append((source_dll, lib / DLL_NAME))
    if not agents:
        plan.notes.append(
            "no local Strategy Tester agents found yet; after the first test run, rerun this command "
            f"(or copy {DLL_NAME} into each Tester/<id>/Agent-*/MQL5/Libraries)"
        )
    return plan


def apply(plan: Plan) -> list[tuple[Path, str]]:
    """Copy what differs; returns (destination, 'new' | 'updated' | 'unchanged') for each file."""
    done = []
    for src, dst in plan.copies:
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            done.append((dst, "unchanged"))
            continue
        state = "updated" if dst.exists() else "new"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        done.append((dst, state))
    return done


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.install_ea",
        description="Copy the EA Bridge Expert Advisor, include files and scripts into a MetaTrader 5 data folder.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--data-folder", required=True, type=Path, help="the terminal's data folder (File > Open Data Folder)"
    )
    parser.add_argument(
        "--dll", type=Path, default=None, help=f"a 64-bit {DLL_NAME} to install into MQL5/Libraries"
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be copied, copy nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = plan_install(args.data_folder, dll=args.dll)
    if args.dry_run:
        for src, dst in plan.copies:
            print(f"would copy {src} -> {dst}")
    else:
        for dst, state in apply(plan):
            print(f"{state:9s} {dst}")
    for note in plan.notes:
        print(f"note: {note}")
    for problem in plan.problems:
        print(f"error: {problem}", file=sys.stderr)
    if plan.problems:
        return 1
    print(
        "done: compile EABridge.mq5 in MetaEditor (F7), attach it to a chart and tick 'Allow DLL imports'; "
        "start the server with python -m bridge.serve"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""python -m bridge.install_ea: copies the EA into a MetaTrader 5 data folder and checks libzmq.dll."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import install_ea
from bridge.errors import UserError, run_main

ROOT = Path(__file__).resolve().parents[1]


def pe_file(path: Path, machine: int) -> Path:
    # MetaTrader and its DLLs are Windows-only; a minimal PE header (MZ stub, e_lfanew, "PE\0\0", machine) is all the
    # installer reads, so that stands in for a real libzmq.dll here.
    data = bytearray(512)
    data[0:2] = b"MZ"
    struct.pack_into("<I", data, 0x3C, 0x80)
    data[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<H", data, 0x84, machine)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def terminal(tmp_path) -> Path:
    """A data folder laid out as MetaTrader makes it: MetaQuotes/Terminal/<id>/MQL5/{Experts,Include,...}."""
    data = tmp_path / "MetaQuotes" / "Terminal" / "D0E8209F77C8CF37AD8BF550E51FF075"
    for sub in ("Experts", "Include", "Scripts", "Libraries", "Files"):
        (data / "MQL5" / sub).mkdir(parents=True)
    return data


def test_installs_sources_and_a_64_bit_dll(terminal, tmp_path, capsys):
    dll = pe_file(tmp_path / "libzmq-v142-mt-4_3_5.dll", 0x8664)
    assert install_ea.main(["--data-folder", str(terminal), "--dll", str(dll)]) == 0
    mql5 = terminal / "MQL5"
    assert (mql5 / "Experts" / "EABridge.mq5").read_bytes() == (
        ROOT / "mql5/Experts/EABridge.mq5"
    ).read_bytes()
    for name in ("Zmq.mqh", "Json.mqh", "Client.mqh", "Trader.mqh"):
        assert (mql5 / "Include" / "EABridge" / name).read_bytes() == (
            ROOT / "mql5/Include/EABridge" / name
        ).read_bytes()
    assert {p.name for p in (mql5 / "Scripts").iterdir()} == {
        "EABridgeExportBars.mq5",
        "EABridgeExportCalendar.mq5",
    }
    assert (mql5 / "Libraries" / "libzmq.dll").read_bytes() == dll.read_bytes()
    out = capsys.readouterr().out
    assert "Allow DLL imports" in out and "no local Strategy Tester agents" in out
    # a second run changes nothing
    assert install_ea.main(["--data-folder", str(terminal)]) == 0
    lines = [
        line
        for line in capsys.readouterr().out.splitlines()
        if "MQL5" in line and not line.startswith("note")
    ]
    assert lines and all(line.startswith("unchanged") for line in lines)


def test_dll_is_copied_to_the_tester_agents(terminal, tmp_path):
    tester = tmp_path / "MetaQuotes" / "Tester" / terminal.name
    for agent in ("Agent-127.0.0.1-3000", "Agent-127.0.0.1-3001"):
        (tester / agent / "MQL5").mkdir(parents=True)
    pe_file(terminal / "MQL5" / "Libraries" / "libzmq.dll", 0x8664)
    assert install_ea.main(["--data-folder", str(terminal)]) == 0
    for agent in ("Agent-127.0.0.1-3000", "Agent-127.0.0.1-3001"):
        assert (tester / agent / "MQL5" / "Libraries" / "libzmq.dll").is_file()


def test_missing_dll_says_where_to_get_one(terminal, capsys):
    assert install_ea.main(["--data-folder", str(terminal)]) == 1
    err = capsys.readouterr().err
    assert "libzmq.dll is missing" in err and "github.com/zeromq/libzmq/releases" in err and "64-bit" in err
    assert (terminal / "MQL5" / "Experts" / "EABridge.mq5").is_file()  # the sources are installed anyway


def test_installed_32_bit_dll_is_reported(terminal, capsys):
    pe_file(terminal / "MQL5" / "Libraries" / "libzmq.dll", 0x014C)
    assert install_ea.main(["--data-folder", str(terminal)]) == 1
    assert "32-bit x86; MetaTrader 5 needs a 64-bit build" in capsys.readouterr().err


@pytest.mark.parametrize(
    "machine, content, message",
    [
        (0x014C, None, "32-bit x86"),
        (None, b"not a dll at all" * 10, "no MZ header"),
        (None, b"MZ" + b"\0" * 100, "no PE header"),
    ],
)
def test_bad_dll_argument_is_refused(terminal, tmp_path, machine, content, message):
    dll = tmp_path / "libzmq.dll"
    if machine is not None:
        pe_file(dll, machine)
    else:
        dll.write_bytes(content)
    with pytest.raises(UserError, match=message):
        install_ea.main(["--data-folder", str(terminal), "--dll", str(dll)])
    assert not (terminal / "MQL5" / "Libraries" / "libzmq.dll").exists()


def test_not_a_data_folder(tmp_path, capsys):
    assert run_main(install_ea.main, ["--data-folder", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no MQL5 folder" in err and "File > Open Data Folder" in err
    assert run_main(install_ea.main, ["--data-folder", str(tmp_path / "nope")]) == 2
    assert "data folder not found" in capsys.readouterr().err


def test_the_mql5_folder_itself_is_accepted_and_dry_run_copies_nothing(terminal, capsys):
    assert install_ea.main(["--data-folder", str(terminal / "MQL5"), "--dry-run"]) == 1  # no DLL yet
    out = capsys.readouterr().out
    mql5 = ROOT / "mql5"
    expected = [mql5 / "Experts" / "EABridge.mq5", *(mql5 / "Include" / "EABridge").glob("*.mqh")]
    expected += list((mql5 / "Scripts").glob("*.mq5"))
    assert (
        out.count("would copy") == len(expected) >= 8
    )  # the EA, its include files (Protocol.mqh too), 2 scripts
    assert all(str(f) in out for f in expected)
    assert not (terminal / "MQL5" / "Experts" / "EABridge.mq5").exists()


def test_help_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.install_ea", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0 and "--data-folder" in proc.stdout and "--dry-run" in proc.stdout

"""Numeric options refuse NaN and infinities at the door, with one line and exit 2 (a NaN passes every ``<`` check
and would silently trade nothing; an infinite size or TTL would trade nonsense)."""

from __future__ import annotations

import argparse

import pytest

from bridge.cli import finite_float, non_negative_float

COMMANDS = ("bridge.serve", "backtest.run", "backtest.sweep", "finetune.train")


def _parser(module: str) -> argparse.ArgumentParser:
    from importlib import import_module

    return import_module(module).build_parser()


def _number_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a for a in parser._actions if a.option_strings and a.type in (float, finite_float, non_negative_float)
    ]


@pytest.mark.parametrize("module", COMMANDS)
def test_every_number_option_is_checked_for_finite_values(module):
    options = _number_options(_parser(module))
    plain = [a.option_strings[0] for a in options if a.type is float]
    assert not plain, f"{module}: options read as plain float (NaN and inf pass): {plain}"


@pytest.mark.parametrize("module", COMMANDS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_nan_and_infinity_are_one_line_errors(module, value, capsys):
    parser = _parser(module)
    for action in _number_options(parser):
        flag = action.option_strings[0]
        if action.nargs and value.startswith("-"):
            continue  # argparse reads "-inf" after a multi-value flag as the next option, refused all the same
        with pytest.raises(SystemExit) as done:  # parsing only: nothing starts, whatever the value
            parser.parse_args([f"{flag}={value}"] if not action.nargs else [flag, *[value] * action.nargs])
        err = capsys.readouterr().err
        assert done.value.code == 2, flag
        assert f"argument {flag}" in err and "finite" in err and "Traceback" not in err, err


def test_latency_cannot_be_negative(capsys):
    from backtest.run import main

    with pytest.raises(SystemExit) as done:
        main(["--latency=-3600"])
    assert done.value.code == 2
    assert "argument --latency: '-3600' must be >= 0" in capsys.readouterr().err

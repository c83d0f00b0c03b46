"""Console scripts of fine-tuning (pyproject.toml [project.scripts]), beside ``python -m finetune.train`` etc."""

from __future__ import annotations

from importlib import import_module

from bridge.errors import run_main


def _run(name: str) -> int:
    return run_main(import_module(f"finetune.{name}").main)


def data() -> int:
    return _run("data")


def train() -> int:
    return _run("train")


def evaluate() -> int:
    return _run("evaluate")


def compare() -> int:
    return _run("compare")


def export() -> int:
    return _run("export")

"""Console scripts of fine-tuning (pyproject.toml [project.scripts]), beside ``python -m finetune.train`` etc."""

from __future__ import annotations

from bridge.cli import run_command


def data() -> int:
    return run_command("finetune.data")


def train() -> int:
    return run_command("finetune.train")


def evaluate() -> int:
    return run_command("finetune.evaluate")


def compare() -> int:
    return run_command("finetune.compare")


def export() -> int:
    return run_command("finetune.export")


def card() -> int:
    return run_command("finetune.card")

"""Environments that switch on the test hooks of child Python processes (tests/hooks/sitecustomize.py)."""

from __future__ import annotations

import os
from pathlib import Path

HOOK_DIR = Path(__file__).resolve().parent / "hooks"


def _with_hooks(**env: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(HOOK_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path}


def kill_env(step: int) -> dict[str, str]:
    """Every new Python process SIGKILLs itself right after global training step ``step``."""
    return _with_hooks(GEODISTILL_KILL_AT_STEP=str(step))


def signal_env(signal_name: str, step: int | None = None) -> dict[str, str]:
    """Every new Python process sends itself ``signal_name`` (SIGINT, SIGTERM) right after global
    training step ``step``, or, with ``step`` None, as it starts preparing a run's data."""
    if step is None:
        return _with_hooks(GEODISTILL_SIGNAL_IN_PREPARE=signal_name)
    return _with_hooks(GEODISTILL_SIGNAL_AT_STEP=f"{step}:{signal_name}")


def host_env(bf16_units: bool, **more: str) -> dict[str, str]:
    """Every new Python process believes its CPU has (or lacks) bf16 matrix units."""
    return _with_hooks(GEODISTILL_TEST_BF16_UNITS="1" if bf16_units else "0", **more)

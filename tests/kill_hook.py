"""The environment that makes Python processes kill themselves after a training step (tests only)."""

from __future__ import annotations

import os
from pathlib import Path

HOOK_DIR = Path(__file__).resolve().parent / "kill_at_step"


def kill_env(step: int) -> dict[str, str]:
    """Environment variables under which every new Python process SIGKILLs itself right after
    global training step ``step`` (see tests/kill_at_step/sitecustomize.py)."""
    path = os.pathsep.join(p for p in (str(HOOK_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {"GEODISTILL_KILL_AT_STEP": str(step), "PYTHONPATH": path}

"""Session set-up: CLI subprocesses (``python -m geodistill.cli``) import the very package under
test. A relative ``PYTHONPATH=src`` does not survive a subprocess started in a temporary folder,
and an editable install elsewhere (another worktree) would then be tested instead."""

from __future__ import annotations

import os
from pathlib import Path

import geodistill

SRC = str(Path(geodistill.__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join([SRC, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)])

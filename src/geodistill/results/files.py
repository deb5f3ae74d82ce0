"""Where results live: the file names of a run and a study, written and read back as `RunResult`.

A run folder holds ``results.json`` (finished: its presence means done) or ``failed.json`` (a
crash recorded by a study: the run's identity, the error and the traceback). `collect` reads
every run under a folder; a ``failed.json`` beside a ``results.json`` is stale and ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geodistill.core.atomic import write_json
from geodistill.core.errors import GeodistillError
from geodistill.results.result import RunResult

RESULTS_FILE = "results.json"  # a finished run
FAILED_FILE = "failed.json"  # a run that crashed (a study's point or teacher)
STUDY_FILE = "sweep.json"  # a study's description, teachers and points
SUMMARY_FILE = "summary.json"  # a recipe's comparison table
COST_CACHE_FILE = "latency.json"  # measured latencies shared by the runs of a folder (models.cost.job_cost)
_REQUIRED = ("run_id", "dataset", "model", "objective_name", "seed")


def write_result(run_dir: str | Path, result: RunResult) -> Path:
    """Write ``results.json`` (status ok) or ``failed.json`` (status failed) atomically."""
    name = RESULTS_FILE if result.ok else FAILED_FILE
    return write_json(Path(run_dir) / name, result.to_dict())


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """A JSON object from ``path``, or a GeodistillError naming the file and ``fix``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeodistillError(f"{path} is not readable JSON ({exc}); {fix}.") from None
    if not isinstance(data, dict):
        raise GeodistillError(f"{path} must hold a JSON object; {fix}.")
    return data


def read_result(path: str | Path) -> RunResult:
    """A run's result from its folder or file, checked: one sentence naming the file when it
    lacks an identity field or, finished, a test accuracy."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE if (path / RESULTS_FILE).is_file() else path / FAILED_FILE
    fix = "re-run that run or delete its folder"
    data = read_json_object(path, fix)
    for key in _REQUIRED:
        if key not in data:
            raise GeodistillError(f"{path} lacks the field '{key}'; {fix}.")
    if path.name == FAILED_FILE:
        data["status"] = "failed"
    metrics = data.get("metrics")
    accuracy = metrics.get("accuracy") if isinstance(metrics, dict) else None
    if data.get("status", "ok") == "ok" and not isinstance(accuracy, (int, float)):
        raise GeodistillError(f"{path} has status 'ok' but no number at 'metrics.accuracy'; {fix}.")
    return RunResult.from_dict(data, source=path)


def finished(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` finished (its results.json exists)."""
    return (Path(run_dir) / RESULTS_FILE).is_file()


def ended(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` ended: finished, or failed (its failed.json exists)."""
    return finished(run_dir) or (Path(run_dir) / FAILED_FILE).is_file()


def collect(directory: str | Path) -> list[RunResult]:
    """Every run under ``directory`` (any depth; a run folder, a study folder, or one result
    file), sorted by path; one sentence when there is none."""
    root = Path(directory)
    if root.is_file() and root.name in (RESULTS_FILE, FAILED_FILE):
        files = [root]
    elif root.is_dir():
        files = sorted(root.rglob(RESULTS_FILE))
        done = {f.parent for f in files}
        files += [f for f in root.rglob(FAILED_FILE) if f.parent not in done]
        files.sort()
    else:
        raise GeodistillError(f"{root} is not a folder; give the run or sweep folder that holds results.json files.")
    if not files:
        raise GeodistillError(
            f"No {RESULTS_FILE} found under {root}; give a run or sweep folder whose runs have finished."
        )
    return [read_result(f) for f in files]

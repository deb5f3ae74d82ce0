"""``geodistill sweep``: a sweep description compiled into a study (`study.grid`), planned
(`study.plan`) and executed (`study.execute`), whole or as one shard."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geodistill.config.study import Study
from geodistill.core.errors import GeodistillError
from geodistill.results.result import RunResult
from geodistill.study.execute import TEACHER_TIMEOUT_S, Options, execute
from geodistill.study.grid import sweep_study
from geodistill.study.plan import plan
from geodistill.study.shards import Shard, parse_shard


def run_sweep(
    sweep: Mapping[str, Any] | Study,
    out: str | Path,
    *,
    workers: int = 1,
    teacher_ckpt: str | None = None,
    devices: Sequence[str] | None = None,
    retry_failed: bool = True,
    shard: Shard | str | None = None,
    teacher_timeout: float = TEACHER_TIMEOUT_S,
    dry_run: bool = False,
) -> list[RunResult]:
    """Run (or resume) a sweep (a description or a `Study`), or one shard of it, under ``out``;
    returns one result (or failure) per student point of the shard, in plan order.

    ``workers``: points run in that many spawned processes; ``devices``: e.g. ``["0", "1"]``,
    worker k sees only device ``devices[k % len(devices)]``; ``teacher_ckpt``: distil every point
    from this checkpoint instead of training teachers; ``retry_failed``: re-run points that
    failed before; ``shard``: ``"I/N"`` (1-based), ``"slurm"`` or a `Shard` (`study.shards`);
    ``teacher_timeout``: seconds to wait for a teacher another shard is building; ``dry_run``:
    only say the plan and its expected time (returns no results).
    """
    shard = parse_shard(shard)
    if workers < 1:
        raise GeodistillError(f"--workers must be at least 1, not {workers}.")
    study = sweep if isinstance(sweep, Study) else sweep_study(sweep)
    if teacher_ckpt:
        if not Path(teacher_ckpt).is_file():
            raise GeodistillError(
                f"Teacher checkpoint {teacher_ckpt} does not exist; give the model.ckpt of a trained teacher."
            )
        if study.datasets and len(study.datasets) > 1:
            raise GeodistillError(
                "A teacher checkpoint serves one dataset; drop --teacher or sweep one dataset at a time."
            )
        study = study.model_copy(update={"teacher_ckpt": str(Path(teacher_ckpt).resolve())})
    p = plan(study, out)
    opts = Options(
        shard=shard,
        workers=workers,
        devices=devices,
        retry_failed=retry_failed,
        teacher_timeout=teacher_timeout,
        dry_run=dry_run,
    )
    return execute(p, out, opts).runs

"""A run's objective from its config: the one reading of ``distill.loss`` (and label smoothing)."""

from __future__ import annotations

from geodistill.config.run import RunConfig
from geodistill.core.errors import GeodistillError
from geodistill.losses import Objective, get_preset


def objective_of(cfg: RunConfig, s_dim: int | None = None, t_dim: int | None = None) -> Objective:
    """The objective of ``cfg.distill.loss``: a registered preset at α, β, T (its CE term with
    ``train.label_smoothing``) or a spec string."""
    dc = cfg.distill
    if get_preset(dc.loss):
        return Objective.preset(
            dc.loss,
            alpha=dc.alpha,
            beta=dc.beta,
            T=dc.T,
            s_dim=s_dim,
            t_dim=t_dim,
            label_smoothing=cfg.train.label_smoothing,
        )
    return Objective.parse(dc.loss, s_dim=s_dim, t_dim=t_dim)


def checked_objective(cfg: RunConfig, s_dim: int | None, t_dim: int | None) -> Objective:
    """`objective_of`, with one sentence when it reads a teacher and the run names none."""
    obj = objective_of(cfg, s_dim, t_dim)
    if obj.needs_teacher and not cfg.distill.teacher:
        raise GeodistillError(
            f"Objective {cfg.distill.loss!r} needs a teacher; pass --teacher PATH/TO/model.ckpt "
            "(or use --loss student)."
        )
    return obj

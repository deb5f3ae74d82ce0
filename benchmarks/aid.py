"""AID benchmark (issue 7): do the seeds' distillation claims hold on real aerial scenes?

Data: ``../shared/data/aid150`` (AID, 30 classes, 10,000 images), dataset ``folder``, the
seeded stratified 60/20/20 split (split seed 0); accuracy is on the held-out test split, of each
run's best-validation checkpoint. Each tier is one study (a sweep) run by the study engine on 2
worker processes: the student alone, the loss ablation at α 0.5, and an α sweep of the thesis
objective with and without the nuclear norm; one teacher per seed. Claims:
(a) the paper: hard CE + KL + cosine (``kl+cos``) beats the student alone and one-loss distillation;
(b) the thesis: α and the nuclear norm on the first-layer weight shape the student.
Tiers: thesis (32 px, CNN4 -> CNN3, 15 epochs) and paper at CPU scale (64 px, ImageNet-pretrained
EfficientNet-Lite0 fine-tuned 5 epochs -> MobileNetV2 from scratch, 8 epochs). About 50 minutes
on 2 cores; ``--quick``: the thesis tier on the synthetic set, 2 epochs, one seed, 2 α values.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import AID
from geodistill.report.build import sections
from geodistill.report.markdown import render
from geodistill.report.sections import Report
from geodistill.results import collect
from geodistill.study.sweep import run_sweep

ALPHA, T, BETA_NUC = 0.5, 4.0, 0.01
KEEP = ("verdict", "thesis-tables", "paired")  # the report's sections this benchmark shows


def tiers(quick: bool) -> dict[str, dict]:
    """The sweep description of each tier."""
    data = {"dataset": "synthetic", "n_per_class": 8, "size": 16} if quick else {"dataset": "folder", "root": str(AID)}
    epochs = {"cnn4": 2, "cnn3": 2} if quick else {"cnn4": 15, "cnn3": 15}
    seeds = [0] if quick else [0, 1, 2, 3, 4]
    alphas = [0.1, 0.5] if quick else [0.1, 0.2, 0.3, 0.4, 0.5]
    thesis = {
        "base": {
            "data": {**data, "size": data.get("size", 32), "normalization": "unit"},
            "train": {"batch_size": 64, "lr": 3e-3, "warmup_epochs": 1, "progress": False},
            "distill": {"alpha": ALPHA, "T": T},
            "teacher": {"train": {"model": "cnn4", "epochs": epochs["cnn4"]}},
            "student": {"train": {"model": "cnn3", "epochs": epochs["cnn3"]}},
        },
        "seeds": seeds,
        "grid": {"loss": ["thesis"], "alpha": alphas, "beta": [BETA_NUC, 0.0]},
        "ablation": True,
    }
    if quick:
        return {"thesis": thesis}
    paper = {
        "base": {
            "data": {**data, "size": 64, "normalization": "mean_std"},
            "train": {"batch_size": 64, "lr": 2e-3, "warmup_epochs": 1, "label_smoothing": 0.1, "progress": False},
            "teacher": {"train": {"model": "efficientnet_lite0", "weights": "imagenet", "epochs": 5, "lr": 1e-3}},
            "student": {"train": {"model": "mobilenet_v2", "epochs": 8}},
        },
        "seeds": seeds,
        "grid": {"loss": ["kl", "cos", "kl+cos"], "alpha": [ALPHA]},
    }
    return {"thesis": thesis, "paper": paper}


def main(out_dir: Path, quick: bool = False) -> str:
    """Run (or resume) both tiers in ``out_dir``; returns the Markdown section."""
    parts = [
        "## AID: the seeds' claims on real aerial scenes (issue 7)\n",
        "AID 60/20/20 (split seed 0), dihedral views, test accuracy of the best-validation checkpoint; each tier "
        "one sweep of the study engine (the student alone, the loss ablation at α 0.5, the thesis objective's "
        "α sweep with β = 0.01 and β = 0), one teacher per seed, 2 worker processes."
        + (" **--quick**: the synthetic set, 2 epochs, one seed: the numbers only show that it runs." if quick else ""),
    ]
    for tier, sweep in tiers(quick).items():
        folder = out_dir / tier
        run_sweep(sweep, folder, workers=1 if quick else 2)
        results = collect(folder)
        shown = [s for s in sections(results, None, [], []) if s.key in KEEP]
        text = render(Report(f"{tier} tier", str(folder), [], shown), folder)
        parts.append(text.replace("# ", "### ", 1).replace("\n## ", "\n#### "))
    return "\n".join(parts)

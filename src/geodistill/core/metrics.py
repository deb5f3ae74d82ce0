"""Quality metrics from a confusion matrix: accuracy, macro precision/recall/F1, per-class F1.

With confusion matrix C (rows = true class, columns = predicted):
accuracy = Σ_k C_kk / Σ C, precision_k = C_kk / Σ_i C_ik, recall_k = C_kk / Σ_j C_kj,
F1_k = 2·P_k·R_k / (P_k + R_k) (0 when P_k + R_k = 0), macro = unweighted mean over classes.
A confusion matrix sums across processes, so distributed evaluation is one all-reduce.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix


def confusion(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C[i, j] = number of samples of true class i predicted as j (int64)."""
    if len(target) == 0:
        return torch.zeros(num_classes, num_classes, dtype=torch.long)
    return multiclass_confusion_matrix(preds.long().cpu(), target.long().cpu(), num_classes=num_classes).long()


def metrics_from_confusion(cm: torch.Tensor, classes: list[str]) -> dict:
    """All quality figures for one split as plain Python numbers (JSON-ready)."""
    cm = cm.double()
    tp = cm.diag()
    pred_tot, true_tot = cm.sum(0), cm.sum(1)
    prec = torch.where(pred_tot > 0, tp / pred_tot.clamp(min=1), torch.zeros_like(tp))
    rec = torch.where(true_tot > 0, tp / true_tot.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(prec + rec > 0, 2 * prec * rec / (prec + rec).clamp(min=1e-12), torch.zeros_like(tp))
    n = float(cm.sum())
    return {
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        "precision_macro": float(prec.mean()),
        "recall_macro": float(rec.mean()),
        "f1_macro": float(f1.mean()),
        "per_class_f1": {c: float(v) for c, v in zip(classes, f1)},
        "confusion_matrix": cm.long().tolist(),
        "classes": list(classes),
        "n": int(n),
    }


def classification_metrics(preds: torch.Tensor, target: torch.Tensor, classes: list[str]) -> dict:
    """Metrics of predicted vs true labels (see module docstring for the formulas)."""
    return metrics_from_confusion(confusion(preds, target, len(classes)), classes)

"""Experiments: results tables, paired statistics, plots and the report of a sweep."""

from geodistill.experiments.plots import plot_alpha, plot_compression, plot_confusion, plot_curves
from geodistill.experiments.report import write_report
from geodistill.experiments.stats import paired_difference, t_quantile, verdict
from geodistill.experiments.table import (
    aggregate,
    collect,
    tidy_rows,
    write_csv,
    write_markdown,
    write_rows_json,
)

__all__ = [
    "aggregate",
    "collect",
    "paired_difference",
    "plot_alpha",
    "plot_compression",
    "plot_confusion",
    "plot_curves",
    "t_quantile",
    "tidy_rows",
    "verdict",
    "write_csv",
    "write_markdown",
    "write_report",
    "write_rows_json",
]

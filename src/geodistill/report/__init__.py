"""The report of a run or study folder: sections rendered as HTML and as Markdown."""

from geodistill.report.build import write_report

__all__ = ["write_report"]

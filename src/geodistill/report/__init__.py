"""The report of a run or study folder: sections rendered as HTML and as Markdown."""

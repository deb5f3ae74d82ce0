"""User-facing errors and warnings.

A `GeodistillError` carries one sentence that names the file, folder or field at fault and says
what to do; the CLI prints it without a traceback and exits with status 2.
"""


class GeodistillError(Exception):
    """A failure caused by the user's input, explained in one sentence."""


class GeodistillWarning(UserWarning):
    """Something the user should know (skipped files, fallbacks) that does not stop the run."""

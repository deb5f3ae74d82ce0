"""The ``geodistill`` command line (`cli.app`): commands in `train`, `study`, `deploy` and
`data`, shared options in `options`, and the one mapping of exceptions to messages in `errors`.
Nothing here imports torch at start-up: each command imports the API it calls."""

from geodistill.cli.app import app, main

__all__ = ["app", "main"]

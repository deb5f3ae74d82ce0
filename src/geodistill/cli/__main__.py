"""``python -m geodistill.cli``: the ``geodistill`` command."""

from geodistill.cli.app import main

if __name__ == "__main__":
    main()

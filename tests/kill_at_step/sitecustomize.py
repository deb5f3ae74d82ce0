"""Test-only: kill a training process mid-run, to test resume and worker failure.

Python imports ``sitecustomize`` at start-up from ``sys.path``; :func:`kill_hook.kill_env` puts
this folder on ``PYTHONPATH`` and sets ``GEODISTILL_KILL_AT_STEP=N``, so every Python process
started with that environment (a CLI subprocess, a spawned sweep worker) registers a step hook
that sends SIGKILL to its own process right after global training step N.
"""

import os

_AT = os.environ.get("GEODISTILL_KILL_AT_STEP")
if _AT is not None:
    import signal

    from geodistill.engine import trainer

    def _kill(state: trainer.TrainState, at: int = int(_AT)) -> None:
        if state.global_step == at:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer.step_hooks.append(_kill)

"""Test-only hooks for child processes, switched on by environment variables.

Python imports ``sitecustomize`` at start-up from ``sys.path``; the test helpers put this folder
on ``PYTHONPATH`` and set:

* ``GEODISTILL_KILL_AT_STEP=N`` (`kill_hook.kill_env`): every Python process started with it (a
  CLI subprocess, a spawned sweep worker) sends SIGKILL to itself right after global training
  step N, to test resume and worker failure;
* ``GEODISTILL_SIGNAL_AT_STEP=N:NAME`` (`kill_hook.signal_env`): the process sends itself signal
  NAME (SIGINT, SIGTERM) right after global training step N, as Ctrl-C or a scheduler would;
* ``GEODISTILL_SIGNAL_IN_PREPARE=NAME`` (`kill_hook.signal_env`): the process sends itself
  signal NAME as it starts preparing a run's data, before anything trains;
* ``GEODISTILL_TEST_BF16_UNITS=0|1`` (`kill_hook.host_env`): the process believes its CPU has
  (1) or lacks (0) bf16 matrix units, so the precision rule's hardware input can be forced to
  either side on one machine.
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

_SIGNAL_AT = os.environ.get("GEODISTILL_SIGNAL_AT_STEP")
if _SIGNAL_AT is not None:
    import signal

    from geodistill.engine import trainer

    def _signal(state: trainer.TrainState, at: int = int(_SIGNAL_AT.split(":")[0])) -> None:
        if state.global_step == at:
            os.kill(os.getpid(), getattr(signal, _SIGNAL_AT.split(":")[1]))

    trainer.step_hooks.append(_signal)

_SIGNAL_IN_PREPARE = os.environ.get("GEODISTILL_SIGNAL_IN_PREPARE")
if _SIGNAL_IN_PREPARE is not None:  # patched before any module takes the name `prepare_data` from it
    import signal

    from geodistill.data import prepare

    def _prepare(*args, _original=prepare.prepare_data, **kw):
        os.kill(os.getpid(), getattr(signal, _SIGNAL_IN_PREPARE))
        return _original(*args, **kw)

    prepare.prepare_data = _prepare

_UNITS = os.environ.get("GEODISTILL_TEST_BF16_UNITS")
if _UNITS is not None:
    import torch

    torch.cuda.is_available = lambda: False
    torch.cpu._is_amx_tile_supported = lambda: _UNITS == "1"
    torch.cpu._is_avx512_bf16_supported = lambda: False

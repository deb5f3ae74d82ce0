"""One progress view for what a process trains: a single run (``geodistill train``) or a job of
several (``geodistill run``, ``geodistill sweep``).

Through logging, everywhere: one line as each run starts and one as it ends (in a job of
several runs the end line adds the job's count, time spent and an estimate of the time left),
an epoch line at each tenth of a run's epochs (INFO; in a job of several runs only once
:data:`QUIET_S` seconds have passed since the job's last line, so a log file of a short job
holds the start and end lines alone) and every other epoch at DEBUG (``--verbose``).

On a terminal (standard output a TTY, rank 0) a live rich view adds an overall bar (runs done
/ total, time left), the current run's epoch bar and the current epoch's step bar; log lines
print above it and it vanishes when the job ends.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from geodistill.core.log import process_rank

logger = logging.getLogger(__name__)

TENTHS = 10  # epoch lines at each tenth of a run
QUIET_S = 60.0  # in a job of several runs, an epoch line only this long after the job's last line


def is_tenth(epoch: int, epochs: int) -> bool:
    """Whether finishing ``epoch`` (counted from 1) of ``epochs`` crosses a tenth of the run
    (at most 10 epochs of a run do; the last one always does)."""
    return epoch >= epochs or (TENTHS * epoch) // epochs > (TENTHS * (epoch - 1)) // epochs


def duration(seconds: float) -> str:
    """'42s', '3m05s', '2h07m': a duration as people read it."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Job:
    """``total`` runs trained one after another in this process, and their output (see the
    module docstring). ``live``: show the rich view (on ``console``, default standard output)."""

    def __init__(
        self,
        total: int,
        *,
        live: bool = False,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.done, self.clock = max(int(total), 1), 0, clock
        self.t0 = self.last_line = clock()
        self.run_fraction = 0.0  # of the current run: epochs done / epochs
        self.run_t0: float | None = None  # when the current run started training here
        self.run_f0, self.run_role = 0.0, "student"  # its fraction done when it started (resumed); its role
        self.durations: list[float] = []  # whole-run seconds of the non-teacher runs trained so far
        self.expected: dict[str, float] = {}  # run name -> seconds the job's estimate expects, until it ends
        self.measured: list[tuple[float, float]] = []  # (seconds taken, seconds expected) of runs ended here
        self.run_name: str | None = None
        self.planned = False  # whether `expect` gave the job's estimate
        self.bars = _bars(console) if live else None
        self.job_task: TaskID | None = None
        self.run_task: TaskID | None = None
        self.step_task: TaskID | None = None
        self.steps = (0, 0)  # the current epoch's steps: done, total

    # ------------------------------------------------------------ the live view
    def start(self) -> None:
        """Show the live view (a no-op off a terminal)."""
        if self.bars is None:
            return
        self.bars.start()
        if self.total > 1:
            self._add_job_task()

    def _add_job_task(self) -> None:
        if self.bars is not None and self.job_task is None:
            self.job_task = self.bars.add_task("all runs", total=self.total, count=self._count(), info="")

    def expect(self, expected: dict[str, float]) -> None:
        """The job's estimate (run name -> the seconds of the job's wall time each run still to
        train is expected to take): from now on the time left is counted down from it, corrected
        by how the runs ended so far took against their estimate; a single run gets the job's
        bar too."""
        self.expected, self.planned = dict(expected), True
        self._add_job_task()
        self._refresh_job()

    def stop(self) -> None:
        """Remove the live view."""
        if self.bars is not None:
            self.bars.stop()

    def _count(self) -> str:
        return f"{self.done}/{self.total} runs"

    def _refresh_job(self) -> None:
        if self.bars is not None and self.job_task is not None:
            self.bars.update(
                self.job_task, completed=self.done + self.run_fraction, count=self._count(), info=self.estimate()
            )

    def _drop(self, task: TaskID | None) -> None:
        if self.bars is not None and task is not None:
            self.bars.remove_task(task)

    # ------------------------------------------------------------ text
    def say(self, text: str, level: int = logging.INFO) -> None:
        """Log ``text``; an INFO line restarts the quiet period of the epoch lines."""
        if level >= logging.INFO:
            self.last_line = self.clock()
        logger.log(level, text)

    def estimate(self) -> str:
        """'1m05s spent, about 2m10s left'. With the job's estimate (`expect`): the expected
        seconds of the runs not ended yet (the current one's unfinished share), times the ratio
        taken / expected of the runs ended so far. Without it: the runs left times the mean
        duration of the student runs trained so far (a teacher is slower and comes first, a
        skipped run took no time, a resumed one counts as a whole run); no estimate before a
        student run has finished."""
        text = f"{duration(self.clock() - self.t0)} spent"
        if self.planned:
            return text + f", about {duration(self._planned_left())} left"
        left = self.total - self.done - self.run_fraction
        if self.durations and left > 0:
            text += f", about {duration(statistics.fmean(self.durations) * left)} left"
        return text

    def _planned_left(self) -> float:
        rest = sum(v for k, v in self.expected.items() if k != self.run_name)
        if self.run_name in self.expected:
            share = (self.run_fraction - self.run_f0) / max(1 - self.run_f0, 1e-9)
            rest += self.expected[self.run_name] * (1 - min(max(share, 0.0), 1.0))
        taken, planned = (sum(x) for x in zip(*self.measured)) if self.measured else (1.0, 1.0)
        return rest * (taken / planned if planned > 0 else 1.0)

    # ------------------------------------------------------------ runs
    def start_run(self, line: str, role: str = "student", name: str | None = None) -> None:
        """A run begins: log its line (what it trains, on what, how long); ``role``: teacher,
        student or distilled (teachers do not set the mean-run estimate); ``name``: its folder
        name (the job's estimate knows it by that)."""
        self.run_fraction, self.run_f0, self.run_role, self.run_t0 = 0.0, 0.0, role, self.clock()
        self.run_name = name
        self.say(line)

    def start_epochs(self, name: str, epochs: int, done: int, bar: bool = True) -> None:
        """The run trains ``epochs`` epochs, ``done`` of them already (resumed); ``bar``: show its bar."""
        self.run_fraction = self.run_f0 = done / max(epochs, 1)
        if self.bars is not None and bar:
            self._drop(self.run_task)
            count = f"epoch {done}/{epochs}"
            self.run_task = self.bars.add_task(name, total=epochs, completed=done, count=count, info="")

    def start_epoch(self, steps: int, done: int) -> None:
        """An epoch of ``steps`` optimizer steps begins (``done`` of them already)."""
        if self.bars is not None and self.run_task is not None:
            self._drop(self.step_task)
            self.steps = (done, steps)
            self.step_task = self.bars.add_task("steps", total=steps, completed=done, count="", info="")

    def step(self, info: str) -> None:
        """One optimizer step finished; ``info``: its running loss and accuracy."""
        if self.bars is not None and self.step_task is not None:
            self.steps = (self.steps[0] + 1, self.steps[1])
            self.bars.update(self.step_task, advance=1, count="{}/{}".format(*self.steps), info=info)

    def end_epoch(self, epoch: int, epochs: int, line: str, info: str) -> None:
        """Epoch ``epoch`` (from 1) of ``epochs`` finished: log ``line`` at INFO at a tenth of the
        run (outside a job's quiet period), else at DEBUG; ``info`` goes on the run's bar."""
        self.run_fraction = epoch / max(epochs, 1)
        quiet = self.total > 1 and self.clock() - self.last_line < QUIET_S
        if self.planned and self.total == 1 and epoch < epochs:  # a single run: its own time left
            line += f"  (about {duration(self._planned_left())} left)"
        self.say(line, logging.INFO if is_tenth(epoch, epochs) and not quiet else logging.DEBUG)
        self._drop(self.step_task)
        self.step_task = None
        if self.bars is not None and self.run_task is not None:
            self.bars.update(self.run_task, completed=epoch, count=f"epoch {epoch}/{epochs}", info=info)
        self._refresh_job()

    def end_run(self, line: str | None, name: str | None = None) -> None:
        """A run ended (finished, skipped as done, or failed): count it and log ``line`` with,
        in a job of several runs, the count and the time estimate; ``name``: the run's, when it
        did not start here (a worker process trained it)."""
        if line is not None and self.run_t0 is not None and self.run_role != "teacher" and self.run_f0 < 1:
            self.durations.append((self.clock() - self.run_t0) / (1 - self.run_f0))
        expected = self.expected.pop(name or self.run_name, None) if (name or self.run_name) else None
        if line is not None and self.run_t0 is not None and expected:
            self.measured.append((self.clock() - self.run_t0, expected))
        self.run_t0, self.run_name = None, None
        self.done, self.run_fraction = min(self.done + 1, self.total), 0.0
        self._drop(self.step_task)
        self._drop(self.run_task)
        self.step_task = self.run_task = None
        self._refresh_job()
        if line is not None:
            self.say(line + (f" [{self._count()} done, {self.estimate()}]" if self.total > 1 else ""))


def _bars(console: Console | None) -> Progress:
    """The rich view: a description, a bar, a count and an info text per task."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
    )


_current: Job | None = None
_live_allowed = True


def current() -> Job | None:
    """The job this process is running, if any."""
    return _current


def disable_live() -> None:
    """Never show the live view in this process (a sweep's worker processes: the parent shows it)."""
    global _live_allowed
    _live_allowed = False


def live_possible() -> bool:
    """Whether a live view fits here: allowed, rank 0, and standard output a terminal."""
    return _live_allowed and process_rank() == 0 and sys.stdout.isatty()


@contextlib.contextmanager
def job(total: int, *, live: bool | None = None, console: Console | None = None) -> Iterator[Job]:
    """``with job(n) as j:`` the process's job of ``n`` runs; inside another job, that job (which
    counts the run). ``live`` None: the live view where :func:`live_possible`."""
    global _current
    if _current is not None:
        yield _current
        return
    j = Job(total, live=live_possible() if live is None else live, console=console)
    _current = j
    j.start()
    try:
        yield j
    finally:
        j.stop()
        _current = None


__all__ = ["QUIET_S", "TENTHS", "Job", "current", "disable_live", "duration", "is_tenth", "job", "live_possible"]

"""The progress view: which epoch lines a run prints, the job's count and estimate, the live view."""

from __future__ import annotations

import io
import logging
import warnings

import pytest
from rich.console import Console

from geodistill.core import log as gdlog
from geodistill.core.progress import QUIET_S, Job, duration, is_tenth, job
from log_capture import captured_log


def test_epoch_lines_fall_on_tenths_of_the_run():
    assert [e for e in range(1, 31) if is_tenth(e, 30)] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert [e for e in range(1, 13) if is_tenth(e, 12)] == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    assert [e for e in range(1, 6) if is_tenth(e, 5)] == [1, 2, 3, 4, 5]
    for epochs in range(1, 401):  # never more than 10 lines a run, and the last epoch always shows
        marks = [e for e in range(1, epochs + 1) if is_tenth(e, epochs)]
        assert len(marks) <= 10 and marks[-1] == epochs


def test_duration():
    assert [duration(s) for s in (0.4, 42, 185, 7620)] == ["0s", "42s", "3m05s", "2h07m"]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _epochs(j: Job, clock: Clock, epochs: int, seconds: float) -> None:
    for e in range(1, epochs + 1):
        clock.t += seconds
        j.end_epoch(e, epochs, f"epoch {e}/{epochs}", "")


def _levels(records: list[logging.LogRecord]) -> dict[str, int]:
    return {r.getMessage(): r.levelno for r in records}


@pytest.fixture
def records():
    out: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.append(record)

    logger = logging.getLogger("geodistill")
    handler, level = _Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_single_run_prints_tenths_at_info_and_the_rest_at_debug(records):
    clock = Clock()
    j = Job(1, clock=clock)
    j.start_run("[r] start")
    _epochs(j, clock, 30, 0.1)
    j.end_run("[r] end")
    levels = _levels(records)
    info = [m for m, lv in levels.items() if lv == logging.INFO]
    assert info == ["[r] start", *(f"epoch {e}/30" for e in range(3, 31, 3)), "[r] end"]  # no job count for one run
    assert sum(lv == logging.DEBUG for lv in levels.values()) == 20


def test_a_job_keeps_quiet_between_lines_and_counts_its_runs(records):
    clock = Clock()
    j = Job(3, clock=clock)
    j.start_run("[a] start")
    _epochs(j, clock, 10, 1.0)  # a short run: all within the quiet period after its start line
    j.end_run("[a] end")
    j.start_run("[b] start")
    _epochs(j, clock, 10, QUIET_S / 4)  # a long run: a tenth line once the quiet period is over
    j.end_run("[b] end")
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert info[:2] == ["[a] start", "[a] end [1/3 runs done, 10s spent, about 20s left]"]
    assert info[3:] == ["epoch 4/10", "epoch 8/10", "[b] end [2/3 runs done, 2m40s spent, about 1m20s left]"]
    assert sum(r.levelno == logging.DEBUG for r in records) == 10 + 8


def test_an_inner_job_is_the_outer_one():
    with job(2, live=False) as outer:
        with job(1) as inner:
            assert inner is outer
            inner.end_run(None)
        assert outer.done == 1
    with job(1, live=False) as fresh:
        assert fresh is not outer and fresh.total == 1


def test_live_view_on_a_terminal_shows_bars_and_prints_lines_above(monkeypatch):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=110, color_system=None)
    logger = logging.getLogger("geodistill")
    level, shown = logger.level, warnings.showwarning
    handler = gdlog.setup()  # follows sys.stdout, which the live view redirects above itself
    try:
        with job(2, live=True, console=console) as j:
            j.start_run("[first] cnn3 on synthetic")
            j.start_epochs("first", 4, 0)
            j.start_epoch(5, 0)
            j.step("loss 1.000 acc 0.500")
            j.bars.refresh()
            j.end_epoch(1, 4, "  [first] epoch 1/4", "val 50.00% (best 50.00%)")
            j.bars.refresh()
            j.end_run("[first] test accuracy 80.00%")
            j.bars.refresh()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        warnings.showwarning = shown
    text = buf.getvalue()
    for piece in ("all runs", "0/2 runs", "1/2 runs", "first", "epoch 1/4", "val 50.00% (best 50.00%)", "1/5"):
        assert piece in text, piece
    assert "[first] cnn3 on synthetic" in text and "[first] test accuracy 80.00% [1/2 runs done" in text


def test_log_lines_follow_stdout_as_it_is_when_they_come(monkeypatch):
    logger = logging.getLogger("geodistill")
    level, shown = logger.level, warnings.showwarning
    handler = gdlog.setup()
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr("sys.stdout", first)
        logger.info("one")
        monkeypatch.setattr("sys.stdout", second)
        logger.info("two")
        warnings.warn("careful\nsecond line of it", UserWarning, stacklevel=1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        warnings.showwarning = shown
    assert first.getvalue() == "one\n"
    assert second.getvalue() == "two\nwarning: careful second line of it\n"  # one line, no source line


def test_captured_log_sees_debug_when_asked():
    with captured_log(logging.DEBUG) as lines:
        logging.getLogger("geodistill.x").debug("detail")
    assert lines == ["detail"]


def test_time_left_comes_from_the_student_runs_not_the_teacher(records):
    """A run job: a slow teacher first, then students. After the teacher there is no basis for
    the students' time (no estimate); then runs left × the mean student run; a skipped run took
    no time and a resumed run counts as the whole run it completes."""
    clock = Clock()
    j = Job(5, clock=clock)
    j.start_run("[teacher] start", role="teacher")
    clock.t += 300
    j.end_run("[teacher] end")
    j.start_run("[s0] start")
    clock.t += 20
    j.end_run("[s0] end")
    j.end_run("[s1] skipped")  # already finished: no start, no time
    j.start_run("[s2] start")
    j.start_epochs("s2", epochs=10, done=5)  # resumed half-way: 20 s for half = 40 s a run
    clock.t += 20
    j.end_run("[s2] end")
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert info[1] == "[teacher] end [1/5 runs done, 5m00s spent]"
    assert info[3] == "[s0] end [2/5 runs done, 5m20s spent, about 1m00s left]"  # 3 left × 20 s
    assert info[4] == "[s1] skipped [3/5 runs done, 5m20s spent, about 40s left]"
    assert info[6] == "[s2] end [4/5 runs done, 5m40s spent, about 30s left]"  # 1 left × mean(20, 40)


def test_with_the_jobs_estimate_time_left_is_said_from_the_first_run_on(records):
    """`expect` gives each run's expected seconds: the teacher's end line already says the time
    left, corrected by how the teacher took against its estimate; inside a run, its unfinished
    share counts; a run a worker trained ends by name."""
    clock = Clock()
    j = Job(3, clock=clock)
    j.expect({"teacher": 100.0, "s0": 10.0, "s1": 10.0})
    assert j.estimate() == "0s spent, about 2m00s left"
    j.start_run("[teacher] start", role="teacher", name="teacher")
    clock.t += 200  # twice its estimate
    j.end_run("[teacher] end")
    j.start_run("[s0] start", name="s0")
    j.start_epochs("s0", epochs=10, done=0)
    clock.t += 10
    j.end_epoch(5, 10, "epoch 5/10", "")
    assert j.estimate() == "3m30s spent, about 30s left"  # (half of s0 + s1) x 2
    j.end_run(None)  # s0 failed: it is no longer expected
    j.end_run("[s1] done by a worker", name="s1")
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert info[1] == "[teacher] end [1/3 runs done, 3m20s spent, about 40s left]"
    assert info[-1] == "[s1] done by a worker [3/3 runs done, 3m30s spent, about 0s left]"


def test_a_single_run_with_an_estimate_says_its_time_left_in_its_epoch_lines(records):
    clock = Clock()
    j = Job(1, clock=clock)
    j.expect({"m": 20.0})
    j.start_run("[m] start", name="m")
    j.start_epochs("m", epochs=10, done=0)
    _epochs(j, clock, 10, 1.0)
    lines = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert lines[1] == "epoch 1/10  (about 18s left)" and lines[-1] == "epoch 10/10"

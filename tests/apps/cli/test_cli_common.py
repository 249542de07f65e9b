"""noisebrush.apps.cli.common: progress off a terminal (plain lines), budgets reported with a measured ETA, and the
CLI's flag names in the library's messages. No timing is measured: a fake clock drives the progress display."""
import io
import warnings

import pytest

from noisebrush import checks
from noisebrush.apps.cli import common
from noisebrush.apps.cli.common import LazyBar, PlainProgress, as_flags, duration, flags, progress
from noisebrush.errors import BadParameter, NoisebrushWarning, UserError


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def store():
    """The notice store of one command run (what the CLI keeps in its click context)."""
    old = checks._notice_store
    st: dict = {"rename": as_flags}
    checks.use_notice_store(lambda: st)
    yield st
    checks.use_notice_store(old)


def _lines(stream) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_off_a_terminal_progress_prints_plain_lines():
    """Piped or logged, the rich bar printed nothing for the whole run; now: a line after the first step, then at
    most every EVERY seconds or per tenth of the work, and a final line."""
    out = io.StringIO()
    bar = progress(100, "painting", file=out)
    assert isinstance(bar, PlainProgress)
    assert not isinstance(progress(100, "painting", file=Tty()), PlainProgress)  # a terminal keeps the rich bar


def test_a_hidden_progress_takes_the_same_calls_and_prints_nothing(capsys, store):
    """The other processes of a multi-process run keep their progress to themselves (torchrun printed one bar
    per process): no lines, no final line, no budget warning."""
    checks.limited("--steps", 5000, "steps")  # an unusual budget the shown display would warn about
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would fail the test
        with progress(100000, "training", shown=False) as bar:
            task = bar.add_task("train", total=100000, completed=0, info="")
            for step in range(1, 4):
                bar.update(task, completed=step, total=100000, info="loss 1.0")
            bar.update(task, advance=1)
            assert bar.tasks[task]["completed"] == 4
    out, err = capsys.readouterr()
    assert out == err == ""
    assert len(checks.take_unusual()) == 1  # left for the process that shows the run (not taken, not said)


def test_plain_lines_rate_eta_and_final_line():
    out, clock = io.StringIO(), Clock()
    with PlainProgress("painting", file=out, clock=clock) as bar:
        task = bar.add_task("paint", total=100, info="")
        for step in range(1, 101):
            clock.t = 0.5 * step
            bar.update(task, completed=step, info=f"σ={100 - step}")
    lines = _lines(out)
    assert lines[0] == "painting 1/100 steps · σ=99"  # at once: something to see within the first step
    assert lines[1] == "painting 10/100 steps · 2.0 it/s · ETA 45 s · σ=90"  # a tenth later
    assert lines[-1] == "painting 100/100 steps · 2.0 it/s · 50 s in all · σ=0"
    assert len(lines) == 11


def test_plain_lines_at_most_every_few_seconds_on_slow_work():
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress("training", file=out, clock=clock)
    task = bar.add_task("train", total=1000, completed=200, info="")  # resumed at step 200
    for step in range(201, 260):
        clock.t = 2.0 * (step - 200)
        bar.update(task, completed=step)
    bar.stop()
    lines = _lines(out)
    assert lines[0].startswith("training 201/1000 steps")
    assert lines[1] == "training 204/1000 steps · 2.0 s/it · ETA 27 min"  # 6 s after the first line
    assert lines[-1].startswith("training 259/1000 steps") and lines[-1].endswith("in all")
    assert all(line.startswith("training ") for line in lines)


def test_nothing_is_printed_when_no_work_was_done():
    out = io.StringIO()
    with PlainProgress("painting", file=out) as bar:
        bar.add_task("paint", total=10, info="")
    assert out.getvalue() == ""


def test_unusual_budgets_are_warned_with_the_measured_eta(store):
    checks.limited("--steps", 5000, "steps")
    out, clock = io.StringIO(), Clock()
    with pytest.warns(NoisebrushWarning) as got:
        with PlainProgress("painting", file=out, clock=clock) as bar:
            task = bar.add_task("paint", total=5000, info="")
            for step, t in ((1, 1.0), (2, 1.5), (3, 2.0)):
                clock.t = t
                bar.update(task, completed=step)
    msgs = [str(w.message) for w in got]
    assert msgs == ["--steps 5000 is far beyond the usual 200: about 42 min at the current 0.5 s a step "
                    "(Ctrl-C stops)"]


def test_rich_bar_reports_unusual_budgets_too(store):
    checks.limited("frames", 500, "frames")
    clock = Clock()
    bar = progress(50, "morphing", file=Tty())
    bar._budget.clock = clock
    with pytest.warns(NoisebrushWarning, match=r"^--frames 500 is far beyond the usual 120: about 48 s at the current "
                                               r"1 s a step \(Ctrl-C stops\)$"):
        with bar:
            task = bar.add_task("morph", total=50, info="")
            for step in (1, 2):
                clock.t = float(step)
                bar.update(task, completed=step)


def test_unusual_budgets_of_a_run_too_short_to_time_are_still_said(store):
    checks.limited("-n", 100, "n")
    with pytest.warns(NoisebrushWarning, match="^-n 100 is far beyond the usual 64$"):
        with PlainProgress("painting", file=io.StringIO()) as bar:
            bar.update(bar.add_task("paint", total=1), completed=1)


def test_duration():
    assert [duration(s) for s in (3.21, 28, 600, 14_040, 400_000)] == ["3.2 s", "28 s", "10 min", "3.9 h", "4.6 days"]


def test_library_names_become_flags():
    assert as_flags("jump_length: must be below the number of steps (4)") == \
        "--jump-length: must be below the number of steps (4)"
    assert as_flags("size 2048: needs about 38 GB") == "--size 2048: needs about 38 GB"
    assert as_flags("size (height): a multiple of 4") == "--size (height): a multiple of 4"
    assert as_flags("n: a whole number") == "-n: a whole number"
    assert as_flags("mask black.png: nothing to repaint") == "--mask black.png: nothing to repaint"
    for same in ("picture size 16×16: needs about", "/tmp/x.png: no such file", "--steps: x", "nothing: n"):
        assert as_flags(same) == same


def test_flags_and_lazybar_rename_bad_parameters_only():
    with pytest.raises(BadParameter, match=r"^--jump-length: must be below"):
        with flags():
            raise BadParameter("jump_length: must be below the number of steps (4) to resample, got 4")
    with pytest.raises(BadParameter, match="^--jumps: a whole number"):
        with LazyBar("inpainting", file=io.StringIO()):
            raise BadParameter("jumps: a whole number from 1 to 100, got 101")
    with pytest.raises(UserError, match="^steps.png: no such file"):
        with LazyBar("inpainting", file=io.StringIO()):
            raise UserError("steps.png: no such file")


def test_warn_once_in_a_command_names_the_flag(store):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        checks.warn_once("k", "size 32: this model was trained at 16 px; expect repeated scenes")
        checks.warn_once("k", "size 32: this model was trained at 16 px; expect repeated scenes")
    assert [str(w.message) for w in got] == ["--size 32: this model was trained at 16 px; expect repeated scenes"]


def test_the_cli_installs_its_notice_store():
    assert checks._notice_store is common._notices
    assert common._notices() is None  # outside a command: library behaviour


def test_work_cut_short_ends_with_a_stopped_line():
    out, clock = io.StringIO(), Clock()
    with pytest.raises(KeyboardInterrupt):
        with PlainProgress("painting", file=out, clock=clock) as bar:
            task = bar.add_task("paint", total=10, info="")
            clock.t = 1.0
            bar.update(task, completed=1)
            clock.t = 1.5
            bar.update(task, completed=2)
            raise KeyboardInterrupt
    assert _lines(out)[-1] == "painting 2/10 steps · 2.0 it/s · stopped after 1.5 s"

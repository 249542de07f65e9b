"""noisebrush.checks: the budget table (LIMITS, limited), its notices, and the README's "Limits" table."""
import re
import warnings
from pathlib import Path

import pytest

from noisebrush import checks
from noisebrush.checks import LIMITS, Unusual, limited, take_unusual, use_notice_store, warn_once
from noisebrush.errors import BadParameter, NoisebrushWarning

README = Path(__file__).resolve().parents[1] / "README.md"
# the README's flag column → the LIMITS key it documents
ROWS = {"--steps": "steps", "-n": "n", "--best-of": "best_of", "--frames": "frames", "--jumps": "jumps",
        "--jump-length": "jump_length", "train --steps": "train_steps", "finetune --steps": "finetune_steps",
        "--batch-size": "batch_size"}


@pytest.fixture
def store():
    """A front end's notice store, as the CLI keeps one per command."""
    st: dict = {}
    use_notice_store(lambda: st)
    yield st
    use_notice_store(None)


@pytest.fixture(autouse=True)
def _no_store_left():
    old = checks._notice_store
    use_notice_store(None)
    yield
    use_notice_store(old)


def test_limited_refuses_beyond_the_hard_maximum_in_one_line():
    for key, lim in LIMITS.items():
        assert limited("--x", int(lim.lo), key) == lim.lo
        for bad in (int(lim.lo) - 1, int(lim.hard) + 1, "7", 2.5, True):
            with pytest.raises(BadParameter) as e:
                limited("--x", bad, key)
            msg = str(e.value)
            assert msg.startswith("--x: ") and "\n" not in msg and f"to {int(lim.hard)}," in msg, msg


def test_beyond_the_usual_range_a_library_caller_is_warned_at_once():
    lim = LIMITS["steps"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert limited("steps", int(lim.soft), "steps") == lim.soft  # the usual maximum itself: no warning
    with pytest.warns(NoisebrushWarning, match=r"^steps 5000 is far beyond the usual 200"):
        assert limited("steps", 5000, "steps") == 5000


def test_a_front_end_collects_unusual_values_for_its_eta(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # collected, not warned
        limited("--steps", 5000, "steps")
        limited("--steps", 5000, "steps")  # checked twice (paint checks, then generates): noted once
        limited("-n", 100, "n")
        limited("-n", 3, "n")
    assert take_unusual() == [Unusual("--steps", 5000, 200), Unusual("-n", 100, 64)]
    assert take_unusual() == []
    assert str(Unusual("--steps", 5000, 200)) == "--steps 5000 is far beyond the usual 200"
    assert str(Unusual("--steps", 2_000_000, 100_000.0)) == "--steps 2000000 is far beyond the usual 100000"


def test_warn_once_per_run_of_a_front_end(store, recwarn):
    warn_once("k", "size 64: this model was trained at 32 px")
    warn_once("k", "size 64: this model was trained at 32 px")
    assert [str(w.message) for w in recwarn] == ["size 64: this model was trained at 32 px"]
    use_notice_store(None)
    warn_once("k", "again")  # library callers: every time (Python's filters decide)
    assert len(recwarn) == 2


def _readme_table() -> dict[str, list[str]]:
    text = README.read_text()
    assert "## Limits" in text, "README.md has no Limits section"
    section = text.split("## Limits", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    return rows


def _numbers(cell: str) -> list[int]:
    return [int(x.replace(",", "")) for x in re.findall(r"\d[\d,]*", cell)]


def test_the_readme_limits_table_is_checks_limits():
    rows = _readme_table()
    assert set(rows) == set(ROWS), "the README's Limits table and this test's ROWS name different flags"
    assert set(ROWS.values()) == set(LIMITS), "a LIMITS entry is missing from the README's Limits table"
    for flag, key in ROWS.items():
        lim = LIMITS[key]
        _flag, _commands, what, allowed, usual, beyond = rows[flag][:6]
        assert what == lim.what, (flag, what)
        assert _numbers(allowed) == [lim.lo, lim.hard], (flag, allowed)
        assert _numbers(usual) == [lim.soft], (flag, usual)
        assert "warned" in beyond
    text = README.read_text()
    assert "NOISEBRUSH_MEMORY_LIMIT" in text and "trained at" in text

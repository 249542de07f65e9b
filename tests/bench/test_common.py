"""The helpers every bench shares: one-line flag errors, comma-separated values, the JSON report."""
import json

import pytest

from noisebrush.bench.common import (BenchParser, check_report_path, comma_choices, comma_separated, finish, machine,
                                    write_report)
from noisebrush.errors import BadParameter, UserError


def test_bad_flag_is_one_line_bad_parameter():
    ap = BenchParser(prog="bench")
    ap.add_argument("--n", type=int)
    with pytest.raises(BadParameter, match="--n") as e:
        ap.parse_args(["--n", "ten"])
    assert "\n" not in str(e.value)


def test_comma_separated():
    assert comma_separated("3, 1,,2", "--k", int, "whole numbers") == [3, 1, 2]
    assert comma_separated("0.5,1", "--s", float, "numbers") == [0.5, 1.0]
    assert comma_separated("", "--k", int, "whole numbers") == []
    with pytest.raises(BadParameter, match=r"^--k: whole numbers separated by commas, got 'a,2'$"):
        comma_separated("a,2", "--k", int, "whole numbers separated by commas")


def test_comma_choices():
    assert comma_choices(" b, a,,", "--k", ("a", "b", "c")) == ["b", "a"]
    with pytest.raises(BadParameter, match=r"^--k: unknown 'd'; choose from a, b, c$"):
        comma_choices("a,d", "--k", ("a", "b", "c"))
    with pytest.raises(BadParameter, match=r"^--k: choose from a, b, c, got ' , '$"):
        comma_choices(" , ", "--k", ("a", "b", "c"))


def test_report_path_and_write(tmp_path, capsys):
    with pytest.raises(BadParameter, match="--json: .* is a folder"):
        check_report_path(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="--out: cannot create"):
        check_report_path(tmp_path / "file" / "r.json", "--out")
    out = check_report_path(tmp_path / "sub" / "r.json")
    assert out.parent.is_dir()
    write_report(out, {"a": [1, 2]})
    got = json.loads(out.read_text())
    assert got["a"] == [1, 2] and got["machine"] == machine()  # every report says what it was measured on
    assert set(got["machine"]) == {"hardware", "cpu", "threads", "torch"}
    assert set(got["machine"]["cpu"]) == {"model", "flags", "bf16_native"}
    assert capsys.readouterr().out == f"wrote {out}\n"
    write_report(out, {"b": 1, "machine": "given"}, indent=1, note="report → {path}")  # a report's own is kept
    assert out.read_text() == '{\n "b": 1,\n "machine": "given"\n}' and capsys.readouterr().out == f"report → {out}\n"


def test_finish_shows_then_writes_when_asked(tmp_path, capsys):
    shown = []
    assert finish({"x": 1}, shown.append) == 0
    assert shown == [{"x": 1}] and capsys.readouterr().out == ""
    out = tmp_path / "r.json"
    assert finish({"x": 2}, lambda r: print("table", r["x"]), out, note="\nwrote {path}") == 0
    assert json.loads(out.read_text())["x"] == 2 and capsys.readouterr().out == f"table 2\n\nwrote {out}\n"


def test_bench_parser_prog_follows_the_entry_point():
    from noisebrush.bench import common

    assert BenchParser(prog="python -m noisebrush.bench x").prog == "python -m noisebrush.bench x"
    common.PROG[0] = "noisebrush bench"
    try:
        assert BenchParser(prog="python -m noisebrush.bench x").prog == "noisebrush bench x"
        assert BenchParser(prog="mine").prog == "mine"
    finally:
        common.PROG[0] = common.MODULE_PROG

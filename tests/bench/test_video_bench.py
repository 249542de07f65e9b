"""The video benchmark, shrunk: the built-in animation and picture models, two held-out prompts, two steps; every
row and number of the report is there, the picture → clip row keeps the first frames bit for bit."""
import json
import math

from noisebrush.bench.__main__ import main


def test_video_bench_quick(tmp_path, capsys):
    out = tmp_path / "v.json"
    assert main(["video", "--n", "2", "--steps", "2", "--batch", "2", "--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["bench"] == "video" and r["settings"]["n"] == 2 and r["settings"]["frames"] == 16
    kinds = [row["kind"] for row in r["rows"]]
    assert kinds == ["real", "video", "picture_to_clip", "independent", "morph"]
    for row in r["rows"]:
        assert 0 <= row["adherence"]["adherence"] <= 1 and 0 <= row["adherence"]["motion_only"] <= 1
        assert set(row["temporal"]) >= {"mad", "jitter", "jitter2"} and row["temporal"]["mad"] >= 0
        assert math.isfinite(row["clip_fd"]) and math.isfinite(row["frame_fd"])
    assert r["rows"][2]["first_frame_identical"] == 1.0 == r["summary"]["first_frame_identical"]
    assert r["rows"][0]["adherence"]["adherence"] >= 0.5  # the judge reads the real clips
    assert r["cli_seconds_per_clip"] is None and r["training"]["steps"] > 0
    shown = capsys.readouterr()
    assert "video:" in shown.out and "report →" in shown.out


def test_video_bench_bad_flags(capsys):
    assert main(["video", "--n", "1"]) == 2
    assert "--n" in capsys.readouterr().err
    assert main(["video", "--model", "builtin", "--n", "2"]) == 2
    assert "not clips" in capsys.readouterr().err

"""The palette benchmark, shrunk: it runs end to end and its report holds what the README quotes."""
import json

from noisebrush.bench.__main__ import main


def test_palette_bench_quick(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["palette", "--n", "3", "--scales", "0.5", "--steps", "3", "--batch", "3", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    rows = r["rows"]
    assert [(x["scenario"], x["scale"]) for x in rows] == [("shades", 0.0), ("shades", 0.5), ("foreign", 0.0),
                                                          ("foreign", 0.5)]
    for plain, guided in (rows[0:2], rows[2:4]):
        assert guided["palette_distance"] < plain["palette_distance"]  # scale 0.5 pulls hard, even in 3 steps
        assert 0 <= guided["adherence"] <= 1 and plain["distance_change"] == 0
    assert "palette guidance" in capsys.readouterr().out


def test_palette_bench_bad_flag(capsys):
    assert main(["palette", "--scenarios", "nope"]) == 2
    assert "--scenarios" in capsys.readouterr().err

"""The palette benchmark, shrunk: it runs end to end and its report holds what the README quotes."""
import json

from noisebrush.bench.__main__ import main


def test_palette_bench_quick(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["palette", "--n", "3", "--scales", "0.5,0.5@2", "--steps", "3", "--batch", "3", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    rows = r["rows"]
    assert [(x["scenario"], x["scale"], x["below"]) for x in rows] == [
        ("shades", 0.0, None), ("shades", 0.5, None), ("shades", 0.5, 2.0),
        ("foreign", 0.0, None), ("foreign", 0.5, None), ("foreign", 0.5, 2.0)]
    for plain, *guided in (rows[0:3], rows[3:6]):
        assert plain["distance_change"] == 0
        for g in guided:
            assert g["palette_distance"] < plain["palette_distance"]  # scale 0.5 pulls hard, even in 3 steps
            assert 0 <= g["adherence"] <= 1
    assert "palette guidance" in capsys.readouterr().out


def test_palette_bench_bad_flag(capsys):
    assert main(["palette", "--scenarios", "nope"]) == 2
    assert "--scenarios: unknown 'nope'; choose from" in capsys.readouterr().err


def test_recoloured_control_hits_the_asked_distance():
    import torch

    from noisebrush.bench.palette import recoloured
    from noisebrush.paint.palette import palette_distance

    real = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    pal = "#b03a2e,#1f3a68,#efe6d0"
    d0 = palette_distance(real, pal).mean()
    for change in (-0.3, -0.6, -0.9):
        got = palette_distance(recoloured(real, pal, change), pal).mean() / d0 - 1
        assert abs(float(got) - change) < 1e-3

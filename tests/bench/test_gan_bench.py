"""`python -m noisebrush.bench gan` (issue 18) with a tiny network and seconds of training: every method trains in
turns for the same training time, exports a model folder that paints with its own sampler, and is evaluated at its
NFEs; the summary's ratios come from the rows; bad flags are one line."""
import dataclasses
import json

import pytest

from _model_fixture import one_thread, reset_accelerate
from noisebrush.bench import gan as race
from noisebrush.bench.__main__ import main


@pytest.fixture()
def tiny(monkeypatch):
    monkeypatch.setattr(race, "RACE_NET", dict(channels=8, channel_mult=[1, 2], blocks=1, attn_resolutions=[],
                                               cross_attn_resolutions=[16]))
    monkeypatch.setattr(race, "RACE_DISC", dict(channels=8, channel_mult=[1, 2, 2]))
    with one_thread():
        yield
    reset_accelerate()


def test_a_tiny_race_trains_in_turns_and_measures_every_row(tiny, tmp_path):
    logs = []
    r = race.run(minutes=0.02, n=16, slice_s=0.5, batch=4, methods=["diffusion", "ddgan", "gan"],
                 out=str(tmp_path / "runs"), picture=str(tmp_path / "side.png"), log=logs.append)
    tr = r["training"]
    for name in ("diffusion", "ddgan", "gan"):
        assert tr[name]["train_seconds"] >= 0.02 * 60 and tr[name]["steps"] >= 1
        conf = json.loads((tmp_path / "runs" / name / "model" / "config.json").read_text())
        assert conf.get("method", "diffusion") == name
    assert any("ddgan:" in line for line in logs) and sum("diffusion:" in line for line in logs) >= 2  # turns
    for name in ("diffusion", "ddgan"):  # each run folder holds its config and a log row every 25 steps
        run = tmp_path / "runs" / name
        assert json.loads((run / "config.json").read_text())["train"]["method"] == name
        if tr[name]["steps"] >= 25:
            assert ("d_loss" in (run / "log.csv").read_text()) == (name == "ddgan")
    rows = {(row["method"], row["nfe"]): row for row in r["rows"]}
    assert set(rows) == {("diffusion", 4), ("diffusion", 10), ("diffusion", 35), ("ddgan", 4), ("gan", 1)}
    for row in rows.values():
        assert row["fd_art"] > 0 and 0 <= row["recall"] <= 1 and 0 <= row["adherence"] <= 1
        assert row["seconds_per_image"] > 0
    assert rows[("ddgan", 4)]["sampler"] == "gan" and rows[("diffusion", 35)]["sampler"] == "dpmpp_2m"
    sm = r["summary"]
    want = rows[("ddgan", 4)]["fd_art"] / rows[("diffusion", 4)]["fd_art"]
    assert sm["ddgan_vs_diffusion4_fd"] == pytest.approx(want)
    assert "ddgan" in sm["goals_met"] and "diffusion_gan" not in sm["goals_met"]  # no Diffusion-GAN row here
    assert r["settings"]["net"]["channels"] == 8 and isinstance(r["cpu_bf16_native"], bool)
    speed = r["painting"]
    assert speed["diffusion"]["steps"] == 20 and speed["ddgan"]["steps"] == 4 and speed["gan"]["sampler"] == "gan"
    assert set(sm["painting_speedup_vs_diffusion_default"]) == {"ddgan", "gan"}
    from PIL import Image

    with Image.open(tmp_path / "side.png") as im:  # three rows of six 96 px pictures, labels on the left
        assert im.width > 6 * 96 and im.height >= 3 * 96
    # the same models evaluated again without training: the same training record, the same numbers
    again = race.run(n=16, methods=["ddgan"], out=str(tmp_path / "runs"), reuse=True, log=logs.append)
    assert again["training"]["ddgan"]["steps"] == tr["ddgan"]["steps"] and again["settings"]["reused"]
    assert again["rows"][0]["fd_art"] == pytest.approx(rows[("ddgan", 4)]["fd_art"], rel=1e-3)


def test_the_summary_judges_the_goals():
    rows = [dict(method="diffusion", nfe=4, fd_art=100.0, recall=0.5, seconds_per_image=0.01),
            dict(method="diffusion", nfe=35, fd_art=30.0, recall=0.5, seconds_per_image=0.08),
            dict(method="ddgan", nfe=4, fd_art=40.0, recall=0.45, seconds_per_image=0.01),
            dict(method="diffusion-gan", nfe=1, fd_art=50.0, recall=0.3, seconds_per_image=0.002),
            dict(method="gan", nfe=1, fd_art=60.0, recall=0.2, seconds_per_image=0.002)]
    sm = race.summarize(rows)
    assert sm["ddgan_vs_diffusion4_fd"] == 0.4 and sm["ddgan_vs_diffusion35_fd"] == pytest.approx(4 / 3)
    assert sm["ddgan_vs_diffusion35_recall"] == pytest.approx(0.9) and sm["ddgan_speedup_vs_diffusion35"] == 8.0
    assert sm["goals_met"] == {"ddgan": True, "diffusion_gan": True}
    rows[2]["recall"] = 0.3  # 0.6× diffusion's recall: the coverage goal fails
    assert race.summarize(rows)["goals_met"]["ddgan"] is False


@pytest.mark.parametrize("args, match", [
    (["--minutes", "0.1"], "--minutes"), (["--n", "8"], "--n"), (["--methods", "diffusion,vae"], "unknown 'vae'"),
    (["--batch", "2"], "--batch"), (["--reuse"], "--reuse: name the earlier race's folder"),
])
def test_bad_flags_are_one_line(args, match, capsys):
    assert main(["gan", *args]) == 2
    assert match in capsys.readouterr().err


def test_reuse_needs_the_earlier_models(tmp_path, capsys):
    assert main(["gan", "--reuse", "--out", str(tmp_path), "--methods", "gan"]) == 2
    assert "no model here from an earlier race" in capsys.readouterr().err


def test_the_fine_tuned_race_puts_a_ddgan_against_the_model_it_started_from(tiny, tmp_path, capsys, monkeypatch):
    from noisebrush.errors import UserError
    from noisebrush.train import Trainer

    assert race.BASE_ROWS == [(4, "dpmpp_2m", None, 3.0), (10, "dpmpp_2m", None, 3.0), (35, "dpmpp_2m", None, 3.0),
                              (4, "ddpm", "ddgan", 1.0), (4, "ddpm", "ddgan", 3.0)]
    monkeypatch.setattr(race, "BASE_ROWS", [race.BASE_ROWS[i] for i in (0, 2, 3, 4)])  # 10 steps: as 4 and 35
    logs = []
    base = race.run(minutes=0.01, n=16, slice_s=0.3, batch=4, methods=["diffusion"], out=str(tmp_path / "runs"),
                    log=logs.append)["training"]["diffusion"]["model"]
    cfg = dataclasses.replace(race._config("ddgan", tmp_path / "runs", 0.0, 0, 4), steps=2, warmup=0, init=base)
    fast = Trainer(cfg).fit()
    r = race.race_fast(str(fast), n=16, picture=str(tmp_path / "fast.png"), log=logs.append)
    assert r["mode"] == "fast" and r["settings"]["base"] == base  # read from the DDGAN's provenance
    rows = r["rows"]
    assert [(x["method"], x["nfe"], x["sampler"], x["schedule"], x["cfg"]) for x in rows] == [
        ("diffusion", 4, "dpmpp_2m", "karras", 3.0), ("diffusion", 35, "dpmpp_2m", "karras", 3.0),
        ("diffusion", 4, "ddpm", "ddgan", 1.0), ("diffusion", 4, "ddpm", "ddgan", 3.0),
        ("ddgan", 4, "gan", "ddgan", 1.0)]
    assert [x["evaluations"] for x in rows] == [8, 70, 4, 8, 4]
    best4 = min(x["fd_art"] for x in rows if x["method"] == "diffusion" and x["nfe"] == 4)
    assert r["summary"]["ddgan_vs_diffusion4_fd"] == pytest.approx(rows[-1]["fd_art"] / best4)
    assert r["training"]["ddgan"]["steps"] == 2 and (tmp_path / "fast.png").stat().st_size > 0
    race.print_table(r)
    assert "fine-tuned gan race" in capsys.readouterr().out
    with pytest.raises(UserError, match="the fine-tuned race takes a DDGAN"):
        race.race_fast(base, n=16)
    with pytest.raises(UserError, match="--base: .* is a ddgan model"):
        race.race_fast(str(fast), str(fast), n=16)


@pytest.mark.parametrize("args, match", [
    (["--base", "builtin"], "--base: only with --fast"), (["--fast", "x", "--quick"], "--fast: races a trained"),
])
def test_fine_tuned_race_flags_are_one_line(args, match, capsys):
    assert main(["gan", *args]) == 2
    assert match in capsys.readouterr().err

"""The sampler benchmark runs end to end on a tiny budget and writes the JSON the issue describes."""
import json
import subprocess
import sys

import pytest
import torch

from noisebrush.bench import samplers as bench

pytest.importorskip("diffusers")


def test_bench_runs_and_writes_rows(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    assert bench.main(["--quick", "--nfe", "5", "--samples", "2", "--ref-steps", "40", "--threads", "1",
                       "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert isinstance(rows, list) and rows and report["machine"]["cpu"]["bf16_native"] in (True, False)
    for r in rows:
        assert {"impl", "mixture", "sampler", "schedule", "nfe", "endpoint_rmse", "endpoint_median", "endpoint_p90",
                "flips", "far", "swd", "overhead_ms"} <= set(r)
        assert r["impl"] in ("noisebrush", "diffusers") and r["nfe"] == 5
        assert r["swd"] is None or r["swd"] > 0
    assert {(r["impl"], r["mixture"]) for r in rows} == {(i, m) for i in ("noisebrush", "diffusers")
                                                         for m in ("default", "tight")}
    assert set(report["mixtures"]) == {"default", "tight"} and report["samples"] == 2
    names = {r["sampler"] for r in rows if r["impl"] == "diffusers"}
    assert {"DDIM", "PNDM", "Euler", "Heun", "DPM++2M", "DPM++3M", "UniPC-2", "UniPC-3", "DEIS-2",
            "UniPC-3 default", "DDIM default"} <= names
    assert "unipc" in {r["sampler"] for r in rows if r["impl"] == "noisebrush"}
    # learned schedules ship for both mixtures at NFE 5 and 10 (noisebrush/bench/tuned/)
    assert {r["mixture"] for r in rows if r["sampler"].endswith("+tuned")} == {"default", "tight"}
    # every deterministic run stays within its budget and has an endpoint error; stochastic ones have none
    for r in rows:
        if r["sampler"] in ("ddpm", "langevin"):
            assert r["endpoint_rmse"] is None and r["flips"] is None
        elif r["nfe_used"] is not None:
            assert r["nfe_used"] <= 5 and r["endpoint_rmse"] > 0
            assert r["endpoint_median"] <= r["endpoint_p90"] and 0 <= r["flips"] <= 2 and 0 <= r["far"] <= 2
    # the goal: per mixture, our lowest median against diffusers' lowest median
    assert [(g["mixture"], g["nfe"]) for g in report["goal"]] == [("default", 5), ("tight", 5)]
    for g in report["goal"]:
        for impl, side in (("noisebrush", "ours"), ("diffusers", "theirs")):
            meds = [r["endpoint_median"] for r in rows if r["impl"] == impl and r["mixture"] == g["mixture"]
                    and r["endpoint_median"] is not None]
            assert g[side]["median"] == min(meds)
        assert g["ratio"] == pytest.approx(g["ours"]["median"] / g["theirs"]["median"])
    text = capsys.readouterr().out
    assert "| impl | sampler |" in text and "ratio" in text and "## Goal" in text and "tight Gaussian mixture" in text


def test_bench_schedule_options():
    """Every σ-based diffusers scheduler runs with Karras, its default, exponential and beta σ; DDIM and PNDM with
    trailing and their default spacing."""
    cfgs = bench.diffusers_configs(quick=False)
    labels = {}
    for name, schedule, _, _ in cfgs:
        labels.setdefault(name.split()[0], set()).add(schedule)
    for fam in ("Euler", "Heun", "LMS", "DPM++2M", "DPM++3M", "UniPC-2", "UniPC-3", "DEIS-2", "DEIS-3"):
        assert labels[fam] == {"karras", "default", "exponential", "beta"}, fam
    assert labels["DDIM"] == labels["PNDM"] == {"trailing", "default"}
    assert len({name for name, *_ in cfgs}) == len(cfgs)


def test_batch_denoiser_is_the_mixture_and_finds_modes():
    gm = bench.GaussianMixture.random((3, 8, 8), components=5, seed=3, std_range=(0.02, 0.08), coarse=4)
    den = bench.BatchDenoiser(gm)
    x = bench.SampleNoise.from_seeds(range(6)).randn((3, 8, 8), dtype=bench.F64) * 3
    for s in (0.01, 0.5, 80.0):
        assert torch.allclose(den(x, s), gm(x, s), rtol=0, atol=1e-12)
    sig = torch.tensor([0.5, 0.5, 2.0, 2.0, 9.0, 0.5], dtype=bench.F64)  # per-sample σ, as adaptive passes them
    assert torch.allclose(den(x, sig), gm(x, sig), rtol=0, atol=1e-12)
    # an exact sample of component k, seen at a small σ, belongs to k
    k = torch.tensor([0, 3, 4])
    x0 = gm.means[k].reshape(3, 3, 8, 8)
    assert torch.equal(den.component(x0, 0.01), k)


def test_goal_picks_lowest_medians():
    def row(impl, sampler, med, mixture="default", nfe=5):
        return {"impl": impl, "mixture": mixture, "sampler": sampler, "schedule": "karras", "nfe": nfe,
                "endpoint_median": med, "endpoint_p90": med and med * 2, "flips": 1, "far": 2, "endpoint_rmse": med,
                "nfe_used": nfe}

    rows = [row("noisebrush", "a", 0.2), row("noisebrush", "b", 0.1), row("diffusers", "X", 0.4),
            row("diffusers", "Y", 0.3), row("noisebrush", "c", None), row("diffusers", "Z", 0.01, nfe=20),
            row("noisebrush", "d", 0.05, mixture="tight")]
    g = bench.goal(rows, ["default"], [5, 20])
    assert len(g) == 1 and g[0]["ours"]["sampler"] == "b" and g[0]["theirs"]["sampler"] == "Y"
    assert g[0]["ratio"] == pytest.approx(0.1 / 0.3)
    assert "| default | 5 | b |" in bench.goal_table(g)


def test_bench_bad_flag_is_one_line():
    r = subprocess.run([sys.executable, "-m", "noisebrush.bench", "samplers", "--nfe", "ten"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: --nfe: a comma-separated list of integers, got 'ten'"]


def test_bench_unknown_name():
    r = subprocess.run([sys.executable, "-m", "noisebrush.bench", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown benchmark" in r.stderr and "Traceback" not in r.stderr


def test_bench_argparse_errors_are_one_line():
    r = subprocess.run([sys.executable, "-m", "noisebrush.bench", "samplers", "--samples", "abc"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: argument --samples: invalid int value: 'abc'"]


def test_bench_mixture_choice_is_one_line():
    from noisebrush.errors import BadParameter

    with pytest.raises(BadParameter, match="argument --mixture: invalid choice: 'nope'"):
        bench.main(["--mixture", "nope"])

"""The quality race runs end to end on a tiny budget (tiny networks, a few pictures) and reports what it promises."""
import json
import math

import pytest
import torch

pytest.importorskip("diffusers")

from noisebrush.bench import quality as bench  # noqa: E402
from noisebrush.bench.__main__ import main as bench_main  # noqa: E402

TINY_UNET = '{"channels": 16, "channel_mult": [1, 2], "blocks": 1, "attn_resolutions": [], ' \
            '"cross_attn_resolutions": [16]}'


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    """Our side trains through Accelerate, whose state is process-wide: leave it as we found it."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def featnet(tmp_path_factory):
    """An untrained feature network: a fixed embedding is all the race needs (the shipped one may be absent)."""
    from noisebrush.eval.features import FeatureNet, save_feature_net

    torch.manual_seed(0)
    return str(save_feature_net(FeatureNet({"family": 6}, widths=(8, 16)), tmp_path_factory.mktemp("featnet")))


@pytest.mark.parametrize("condition", ["text", "none"])
def test_tiny_race_reports_every_key(condition, featnet, tmp_path, capsys):
    out = tmp_path / "sub" / "quality.json"
    argv = ["quality", "--minutes", "0.02", "--n", "8", "--data-size", "40", "--condition", condition,
            "--slice", "0.3", "--nfe", "3", "--featnet", featnet, "--ours-model", TINY_UNET,
            "--diffusers-width", "8", "--json", str(out)]
    assert bench_main(argv) == 0
    res = json.loads(out.read_text())
    for key in ("ours_fd", "diffusers_fd", "ratio", "minutes", "ours_kid", "diffusers_kid", "ours_steps",
                "diffusers_steps", "ours_images_seen", "diffusers_images_seen", "ours_params", "diffusers_params",
                "ours_sampling_seconds", "diffusers_sampling_seconds", "settings", "notes", "real_fd_floor"):
        assert key in res, key
    for key in ("ours_fd", "diffusers_fd"):
        assert math.isfinite(res[key]) and res[key] > 0
    assert res["ratio"] == pytest.approx(res["ours_fd"] / res["diffusers_fd"])
    assert res["minutes"] == 0.02
    assert res["ours_steps"] >= 1 and res["diffusers_steps"] >= 1
    assert res["ours_images_seen"] == 64 * res["ours_steps"]
    assert res["diffusers_images_seen"] == 16 * res["diffusers_steps"]
    assert res["ours"]["condition"] == condition
    assert (res["ours"]["guidance"] == 3.0) == (condition == "text")
    assert res["settings"]["n"] == 8 and res["settings"]["condition"] == condition
    text = capsys.readouterr().out
    assert "fd_art" in text and "ratio ours / diffusers" in text


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_lr_plans_follow_each_recipe_schedule():
    """The plans reproduce make_scheduler (ours) and diffusers' get_scheduler exactly, then hold the last LR."""
    from diffusers.optimization import get_scheduler

    from noisebrush.train.config import TrainConfig
    from noisebrush.train.lr import make_scheduler

    cfg = TrainConfig(steps=260)
    p = torch.nn.Parameter(torch.zeros(1))
    for total, reference, plan_of in [
        (260, lambda o: make_scheduler(o, "cosine", 260, warmup=cfg.warmup, final=cfg.lr_final),
         lambda o: bench.LRPlan(o, bench._ours_lr_at(cfg), cfg.warmup)),
        (600, lambda o: get_scheduler("cosine", o, num_warmup_steps=500, num_training_steps=600),
         lambda o: bench.LRPlan(o, bench._diffusers_lr_at(), 500)),
    ]:
        base = cfg.lr if total == 260 else 1e-4
        o1, o2 = torch.optim.AdamW([p], lr=base), torch.optim.AdamW([p], lr=base)
        ref, plan = reference(o1), plan_of(o2)
        plan.set_total(total)
        for _ in range(total):
            assert o2.param_groups[0]["lr"] == pytest.approx(o1.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
            last = o1.param_groups[0]["lr"]
            ref.step()
            plan.step()
        assert plan.held and o2.param_groups[0]["lr"] == pytest.approx(last, rel=1e-9, abs=1e-15)


def test_diffusers_width_matches_our_parameter_count_within_10_percent():
    from noisebrush.nets.unet import UNet, UNetConfig

    for text_dim in (0, 384):
        ours = sum(p.numel() for p in UNet(UNetConfig(resolution=32, text_dim=text_dim)).parameters())
        width, n = bench.match_width(ours)
        assert width % 8 == 0 and abs(n / ours - 1) < 0.1


@pytest.mark.parametrize("argv, match", [
    ([], "--minutes"), (["--minutes", "0"], "--minutes"), (["--minutes", "soon"], "--minutes"),
    (["--minutes", "1", "--condition", "label"], "--condition"), (["--minutes", "1", "--n", "2"], "--n"),
    (["--minutes", "1", "--n", "8", "--data-size", "10"], "--data-size"),
    (["--minutes", "1", "--threads", "0"], "--threads"), (["--minutes", "1", "--slice", "-1"], "--slice"),
    (["--minutes", "1", "--ours-model", "[1]"], "--ours-model"), (["--minutes", "1", "--bogus"], "bogus"),
    (["--minutes", "1", "--featnet", "/nonexistent/featnet"], "feature network"),
])
def test_bad_flags_are_one_line_errors(argv, match, capsys):
    assert bench_main(["quality", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and match in err and "\n" not in err


def test_bf16_sampling_is_refused_where_the_cpu_would_emulate_it(monkeypatch, capsys):
    monkeypatch.setattr(bench, "emulated", lambda dtype, device="cpu": dtype == torch.bfloat16)
    assert bench_main(["quality", "--minutes", "1", "--sample-precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --sample-precision bf16: this CPU has no native bf16") and "\n" not in err

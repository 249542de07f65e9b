"""The quality race runs end to end on a tiny budget (tiny networks, a few pictures), like for like by default (ours
unconditional, on the --minutes recipe), with the text-conditional row only when asked, and reports what it
promises."""
import json
import math

import pytest
import torch

pytest.importorskip("diffusers")

from noisebrush.bench import quality as bench  # noqa: E402
from noisebrush.bench.__main__ import main as bench_main  # noqa: E402
from noisebrush.train.budget import PROBE_STEPS, budget_batch  # noqa: E402

TINY_UNET = '{"channels": 16, "channel_mult": [1, 2], "blocks": 1, "attn_resolutions": [], ' \
            '"cross_attn_resolutions": [16]}'


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    """Our side trains through Accelerate, whose state is process-wide: leave it as we found it. One thread (a
    shared machine's cores make several threads wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def featnet(tmp_path_factory):
    """An untrained feature network: a fixed embedding is all the race needs (the shipped one may be absent)."""
    from noisebrush.eval.features import FeatureNet, save_feature_net

    torch.manual_seed(0)
    return str(save_feature_net(FeatureNet({"family": 6}, widths=(8, 16)), tmp_path_factory.mktemp("featnet")))


@pytest.mark.parametrize("text_row", [False, True])
def test_tiny_race_reports_every_key(text_row, featnet, tmp_path, capsys):
    out = tmp_path / "sub" / "quality.json"
    argv = ["quality", "--minutes", "0.02", "--n", "8", "--data-size", "40", "--slice", "0.3", "--nfe", "3",
            "--featnet", featnet, "--ours-model", TINY_UNET, "--diffusers-width", "8", "--json", str(out),
            *(["--text-row"] if text_row else [])]
    assert bench_main(argv) == 0
    res = json.loads(out.read_text())
    for key in ("ours_fd", "diffusers_fd", "ratio", "minutes", "ours_kid", "diffusers_kid", "ours_recall",
                "diffusers_recall", "ours_steps", "diffusers_steps", "ours_images_seen", "diffusers_images_seen",
                "ours_params", "diffusers_params", "ours_sampling_seconds", "diffusers_sampling_seconds", "settings",
                "notes", "real_fd_floor", "text_row"):
        assert key in res, key
    for key in ("ours_fd", "diffusers_fd"):
        assert math.isfinite(res[key]) and res[key] > 0
    assert res["ratio"] == pytest.approx(res["ours_fd"] / res["diffusers_fd"])
    assert res["minutes"] == 0.02
    assert res["ours_steps"] >= 1 and res["diffusers_steps"] >= 1
    # like for like: ours unconditional, on the --minutes recipe (its budget's batch, its own plan)
    ours = res["ours"]
    assert ours["condition"] == "none" and ours["guidance"] is None and res["settings"]["condition"] == "none"
    assert ours["batch_size"] == budget_batch(0.02) and ours["config"]["minutes"] == 0.02
    assert ours["config"]["steps"] is None
    assert res["ours_images_seen"] == ours["batch_size"] * res["ours_steps"]
    assert res["diffusers_images_seen"] == 16 * res["diffusers_steps"]
    assert ours["plan"]["budget_seconds"] == pytest.approx(1.2) and ours["plan"]["probe_steps"] == PROBE_STEPS
    assert res["ours_steps"] <= PROBE_STEPS or ours["plan"]["planned_steps"] >= PROBE_STEPS
    assert res["diffusers"]["train_precision"] == ours["train_precision"] in ("fp32", "bf16")
    assert res["settings"]["n"] == 8 and res["settings"]["text_row"] == text_row
    text = capsys.readouterr().out
    assert "fd_art" in text and "ratio ours / diffusers" in text and "like for like" in text
    if not text_row:
        assert res["text_row"] is None and "not like for like" not in text
    else:
        row = res["text_row"]
        assert row["condition"] == "text" and row["guidance"] == 3.0 and row["like_for_like"] is False
        assert math.isfinite(row["fd"]) and row["ratio_vs_diffusers"] == pytest.approx(row["fd"] / res["diffusers_fd"])
        assert "text row (not like for like)" in text


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_diffusers_lr_plan_follows_its_schedule():
    """diffusers' plan reproduces its get_scheduler exactly, then holds the last LR."""
    from diffusers.optimization import get_scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    total = 600
    o1, o2 = torch.optim.AdamW([p], lr=1e-4), torch.optim.AdamW([p], lr=1e-4)
    ref = get_scheduler("cosine", o1, num_warmup_steps=500, num_training_steps=total)
    plan = bench.LRPlan(o2, bench._diffusers_lr_at(), 500)
    plan.set_total(total)
    for _ in range(total):
        assert o2.param_groups[0]["lr"] == pytest.approx(o1.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        last = o1.param_groups[0]["lr"]
        ref.step()
        plan.step()
    assert plan.held and o2.param_groups[0]["lr"] == pytest.approx(last, rel=1e-9, abs=1e-15)


def test_our_side_stops_at_its_own_planned_end(tmp_path):
    """Ours is driven by the trainer's TimeBudget with the racer's training seconds: on a clock of 0.1 s a step it
    plans from its probe and stops at its own planned end, within the budget, its LR at the end of its cosine."""
    data = bench.CachedArt(torch.zeros(16, 3, 32, 32, dtype=torch.uint8))
    model = json.loads(TINY_UNET)
    ours = bench.Ours(data, "none", 0, model, str(tmp_path / "o"), 0.05, batch_size=2, precision="fp32")
    calls = []
    real = ours.trainer.train_step

    def step():
        calls.append(1)
        return real()

    ours.trainer.train_step = step
    ticks = iter(range(10**6))
    ours.clock = lambda: 0.1 * next(ticks)  # read at the start and the end of each step: 0.1 s a step
    ours.run_until(3.0)  # the budget is 3 s: the racer's own plan ends it
    plan = ours.trainer.budget
    assert ours.finished and ours.steps == len(calls) == plan.plan.end
    assert ours.seconds == pytest.approx(0.1 * ours.steps) and abs(ours.seconds - 3.0) <= 0.1
    assert ours.lr() == pytest.approx(ours.trainer.cfg.lr * 0.05)  # the cosine ran to its end


def test_diffusers_width_matches_our_parameter_count_within_10_percent():
    from noisebrush.nets.unet import UNet, UNetConfig

    for text_dim in (0, 384):
        ours = sum(p.numel() for p in UNet(UNetConfig(resolution=32, text_dim=text_dim)).parameters())
        width, n = bench.match_width(ours)
        assert width % 8 == 0 and abs(n / ours - 1) < 0.1


@pytest.mark.parametrize("argv, match", [
    ([], "--minutes"), (["--minutes", "0"], "--minutes"), (["--minutes", "soon"], "--minutes"),
    (["--minutes", "1", "--condition", "label"], "--condition"), (["--minutes", "1", "--n", "2"], "--n"),
    (["--minutes", "1", "--condition", "text"], "--text-row"),
    (["--minutes", "1", "--precision", "fp16"], "--precision"),
    (["--minutes", "1", "--ours-batch", "0"], "--ours-batch"), (["--minutes", "99999"], "--minutes"),
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

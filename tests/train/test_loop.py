"""The trainer, in this process: learning, the non-finite guard, logs, resume, export, penalties, dropout, samples."""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
import zlib

import pytest
import safetensors
import safetensors.torch
import torch
from PIL import Image

from noisebrush.errors import BadParameter, UserError
from noisebrush.nets.unet import UNet, UNetConfig
from noisebrush.train import Trainer
from noisebrush.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from noisebrush.train.lr import expected_lr
from noisebrush.io.model_folder import MODEL_FORMAT
from noisebrush.train.loop import SIGMA_BUCKETS


def _clone(sd):
    return {k: v.detach().clone() for k, v in sd.items()}


def _opt_tensors(trainer):
    return {(i, n): v.clone() for i, s in trainer.opt.state_dict()["state"].items() for n, v in s.items()}


def _assert_same(a, b, what=""):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what} {k} differs"


def _rows(run):
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _record(trainer):
    """Keep every StepResult (``progress`` gets the log row's window values on logging steps instead)."""
    results = []
    real = trainer.train_step

    def step():
        results.append(real())
        return results[-1]

    trainer.train_step = step
    return results


def _fixed(trainer, n):
    """Freeze the data stream: every step sees the same pictures, σ and noise."""
    batch = trainer.batch(range(n))
    trainer.objective.batch = lambda ks: batch  # the objective's batches feed the loop
    return batch


# -- learning ---------------------------------------------------------------------------------------------------------

def test_overfits_one_batch(make_config):
    # Four pictures with fixed σ and noise: a tiny net memorises them; the loss falls well over 10× in 120 steps
    # (30–40× measured). With a broken optimizer step, backward or loss the loss stays ≈ 1.4.
    tr = Trainer(make_config(data_size=4, batch_size=4, lr=3e-2, steps=1000, cond_drop=0.0, log_every=0))
    _fixed(tr, 4)
    ema0 = _clone(tr.ema.state_dict())
    losses = [tr.train_step().loss for _ in range(120)]
    assert all(math.isfinite(x) for x in losses)
    end = sum(losses[-5:]) / 5
    assert losses[0] > 10 * end, (losses[0], end)
    assert tr.skipped == 0 and tr.step == 120 and tr.ema.updates == 120
    assert any(not torch.equal(v, ema0[k]) for k, v in tr.ema.state_dict().items())


def test_grad_accum_matches_one_pass(make_config):
    out = {}
    for accum in (1, 2, 4):
        tr = Trainer(make_config(f"acc{accum}", grad_accum=accum, steps=3, lr_schedule="cosine", warmup=1))
        for _ in range(3):
            tr.train_step()
        out[accum] = _clone(tr.net.state_dict())
        assert tr.micro == 8 // accum
    for accum in (2, 4):
        for k, v in out[1].items():
            torch.testing.assert_close(out[accum][k], v, rtol=1e-4, atol=1e-5, msg=f"grad_accum={accum}: {k}")


def test_steps_are_reproducible_in_process(make_config):
    # the same config twice in one process, with the global RNG disturbed in between: identical bits
    a = Trainer(make_config("a", model=dict(dropout=0.2)))
    for _ in range(3):
        a.train_step()
    torch.manual_seed(1234)
    torch.rand(100)
    b = Trainer(make_config("b", model=dict(dropout=0.2)))
    for _ in range(3):
        b.train_step()
    _assert_same(_clone(a.net.state_dict()), _clone(b.net.state_dict()), "weight")
    _assert_same(_clone(a.ema.state_dict()), _clone(b.ema.state_dict()), "ema")


def test_bf16_smoke(make_config, tmp_path):
    tr = Trainer(make_config(mixed_precision="bf16", steps=2, log_every=1))
    assert tr.precision == "bf16"
    model = tr.fit()
    rows = _rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(math.isfinite(float(r["loss"])) for r in rows) and tr.skipped == 0
    assert all(p.dtype == torch.float32 for p in tr.net.parameters())  # master weights stay float32
    conf = json.loads((model / "config.json").read_text())
    assert conf["provenance"]["precision"] == "bf16"
    sd = safetensors.torch.load_file(str(model / "model.safetensors"))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in sd.values())


# -- the non-finite guard -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["loss", "grad"])
def test_nonfinite_step_is_skipped(make_config, tmp_path, how):
    cfg = make_config(steps=8, lr_schedule="linear", lr_final=0.1, log_every=1)
    tr = Trainer(cfg)
    bad_step = 3
    real_batch = tr.objective.batch

    def batch(ks):
        b = real_batch(ks)
        if how == "loss" and tr.step == bad_step:
            b["x0"] = b["x0"].clone()
            b["x0"][1] = float("nan")  # one sample only: the loss is NaN, the other samples are fine
        return b

    tr.objective.batch = batch
    results = _record(tr)

    def progress(step, row):
        if step == bad_step:  # before step index 3 runs: snapshot, and for "grad" poison one gradient
            state["opt"], state["ema"] = _opt_tensors(tr), _clone(tr.ema.state_dict())
            state["updates"] = tr.ema.updates
            if how == "grad":
                p = tr.net.out_gain
                state["hook"] = p.register_hook(lambda g: g * float("inf"))
        if step == bad_step + 1:
            if "hook" in state:
                state["hook"].remove()
            assert tr.skipped == 1
            _assert_same(_opt_tensors(tr), state["opt"], "optimizer state")
            _assert_same(_clone(tr.ema.state_dict()), state["ema"], "ema")
            assert tr.ema.updates == state["updates"]

    state = {}
    tr.fit(progress)
    assert tr.skipped == 1 and tr.step == 8
    rows = _rows(tmp_path / "run")
    assert [int(r["skipped"]) for r in rows] == [0, 0, 0, 1, 1, 1, 1, 1]
    assert [r.skipped for r in results] == [False, False, False, True, False, False, False, False]
    # the skipped step still advanced the schedule; the steps after it learn again with finite losses
    for s, r in enumerate(results):
        assert r.step == s + 1
        assert r.lr == pytest.approx(expected_lr("linear", s, 8, base=cfg.lr, final=0.1), rel=1e-9)
    assert all(math.isfinite(float(r["loss"])) for r in rows)  # the NaN sample is left out of the logged mean
    assert all(math.isfinite(r.loss) and math.isfinite(r.grad_norm) for r in results[bad_step + 1:])
    assert tr.ema.updates == 7
    assert int(tr.opt.state_dict()["state"][0]["step"]) == 7  # Adam's own step count skipped one


def test_nonfinite_step_leaves_weights_untouched(make_config):
    tr = Trainer(make_config(steps=8))
    for _ in range(3):
        tr.train_step()
    real_batch = tr.objective.batch
    tr.objective.batch = lambda ks: {**real_batch(ks), "x0": torch.full((8, 3, 16, 16), float("nan"))}
    before = _clone(tr.net.state_dict())
    assert tr.train_step().skipped
    _assert_same(_clone(tr.net.state_dict()), before, "weight")


# -- the CSV log ----------------------------------------------------------------------------------------------------

def test_csv_log(make_config, tmp_path):
    cfg = make_config(steps=6, log_every=2, lr_schedule="linear", lr_final=0.5)
    tr = Trainer(cfg)
    res = _record(tr)
    tr.fit()
    losses = [r.loss for r in res]
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        header = next(csv.reader(f))
    buckets = [f"loss_s{i}" for i in range(len(SIGMA_BUCKETS) + 1)]
    assert {"step", "loss", "lr", "img_s", "grad_norm", "skipped", *buckets} <= set(header)
    rows = _rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    for i, r in enumerate(rows):
        # the row's loss is the mean over its window of 2 steps × 8 samples
        assert float(r["loss"]) == pytest.approx((losses[2 * i] + losses[2 * i + 1]) / 2, rel=1e-5)
        # the lr column is the optimizer's LR after the row's last step, i.e. the one the next step will use
        assert float(r["lr"]) == pytest.approx(expected_lr("linear", 2 * i + 2, 6, base=cfg.lr, final=0.5))
        assert float(r["img_s"]) > 0 and float(r["grad_norm"]) > 0 and int(r["skipped"]) == 0
        # a σ bucket has a value exactly when one of the window's samples fell in it
        sig = tr.batch(range(16 * i, 16 * i + 16))["sigma"]
        hit = set(torch.bucketize(sig, torch.tensor(SIGMA_BUCKETS, dtype=torch.float64)).tolist())
        for b, name in enumerate(buckets):
            assert (r[name] != "") == (b in hit), (r, hit)
            if r[name]:
                assert float(r[name]) > 0


def test_resume_after_crash_does_not_duplicate_rows_and_matches(make_config, tmp_path):
    """A crash after the step-4 checkpoint, after rows 5 and 6 were logged; the resumed run rewrites them."""
    kw = dict(steps=8, checkpoint_every=4, log_every=1, lr_schedule="cosine", warmup=2, keep_last=5,
              model=dict(dropout=0.1))
    ref = Trainer(make_config("ref", **kw))
    ref.fit()

    def crash(step, row):
        if step == 6:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Trainer(make_config("run", **kw)).fit(crash)
    assert [int(r["step"]) for r in _rows(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4]

    tr = Trainer(make_config("run", **kw), resume=True)
    assert tr.step == 4
    assert [int(r["step"]) for r in _rows(tmp_path / "run")] == [1, 2, 3, 4]  # truncated at the checkpoint
    tr.fit()
    rows, ref_rows = _rows(tmp_path / "run"), _rows(tmp_path / "ref")
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    for r, q in zip(rows, ref_rows):
        assert [r[k] for k in ("step", "loss", "loss_s2", "lr", "grad_norm")] == \
               [q[k] for k in ("step", "loss", "loss_s2", "lr", "grad_norm")]
    _assert_same(_clone(tr.net.state_dict()), _clone(ref.net.state_dict()), "weight")
    _assert_same(_clone(tr.ema.state_dict()), _clone(ref.ema.state_dict()), "ema")
    _assert_same(_opt_tensors(tr), _opt_tensors(ref), "optimizer")


def test_keyboard_interrupt_checkpoints_then_propagates(make_config, tmp_path):
    ref = Trainer(make_config("ref"))
    ref.fit()
    tr = Trainer(make_config("run"))

    def interrupt(step, row):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.fit(interrupt)
    run = tmp_path / "run"
    assert latest_checkpoint(run) == run / "checkpoints" / "step-0000003"
    ck = load_checkpoint(latest_checkpoint(run))
    assert ck["step"] == 3
    _assert_same(ck["model"], _clone(tr.net.state_dict()), "checkpointed weight")
    assert not (run / "model").exists()
    assert [int(r["step"]) for r in _rows(run)] == [2, 3]  # the partial window is logged too

    resumed = Trainer(make_config("run"), resume=True)
    assert resumed.step == 3
    resumed.fit()
    assert [int(r["step"]) for r in _rows(run)] == [2, 3, 4, 6]
    _assert_same(_clone(resumed.net.state_dict()), _clone(ref.net.state_dict()), "weight")
    _assert_same(_clone(resumed.ema.state_dict()), _clone(ref.ema.state_dict()), "ema")


# -- starting and resuming --------------------------------------------------------------------------------------------

def test_start_and_resume_errors(make_config, tmp_path):
    Trainer(make_config(steps=2)).fit()
    with pytest.raises(UserError, match="already holds checkpoints"):
        Trainer(make_config(steps=4))
    with pytest.raises(UserError, match="nothing to resume"):
        Trainer(make_config("empty", steps=4), resume=True)
    with pytest.raises(UserError, match="network differs"):
        Trainer(make_config(steps=4, model=dict(channels=16)), resume=True)
    with pytest.raises(UserError, match="network differs"):
        Trainer(make_config(steps=4, condition="none"), resume=True)  # no label embedding: another network
    with pytest.raises(UserError):
        Trainer(make_config("other", steps=4), resume=str(tmp_path / "run"))  # a run folder is not a checkpoint
    # resuming from an explicit checkpoint path works, and so does plain resume=True to a longer run
    tr = Trainer(make_config("other", steps=4), resume=str(tmp_path / "run" / "checkpoints" / "step-0000002"))
    assert tr.step == 2
    tr = Trainer(make_config(steps=4), resume=True)
    assert tr.step == 2
    tr.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2, 4]


def test_init_from_a_model_folder_or_a_checkpoint(make_config, tmp_path):
    first = Trainer(make_config("first", steps=3))
    model = first.fit()
    exported = safetensors.torch.load_file(str(model / "model.safetensors"))
    # from a model folder: the network and its average both start at the exported (EMA) weights
    tr = Trainer(make_config("second", steps=2, init=str(model)))
    for k, v in tr.net.state_dict().items():
        assert torch.equal(v, exported[k].float()), k
    assert tr.step == 0 and tr.ema.updates == 0
    second = tr.fit()
    conf = json.loads((second / "config.json").read_text())
    assert conf["provenance"]["init"] == str(model) and conf["provenance"]["steps"] == 2
    # a resumed run's weights still descend from its init: its provenance says so
    resumed = Trainer(make_config("second", steps=3, init=str(model)), resume=True).fit()
    conf = json.loads((resumed / "config.json").read_text())
    assert conf["provenance"]["init"] == str(model) and conf["provenance"]["steps"] == 3
    # from a checkpoint: raw weights for the network, the average for the EMA (with its update count)
    ck = tmp_path / "first" / "checkpoints" / "step-0000003"
    tr = Trainer(make_config("third", steps=2, init=str(ck)))
    raw = safetensors.torch.load_file(str(ck / "model.safetensors"))
    for k, v in tr.net.state_dict().items():
        assert torch.equal(v, raw[k]), k
    assert tr.ema.updates == 3 and tr.step == 0
    with pytest.raises(UserError, match="another network"):
        Trainer(make_config("fourth", steps=2, init=str(model), model=dict(channels=16)))
    with pytest.raises(UserError, match="no such model folder"):
        Trainer(make_config("fifth", steps=2, init=str(tmp_path / "nowhere")))


def test_bad_trainer_settings(make_config):
    with pytest.raises(BadParameter, match="ema_decay"):
        Trainer(make_config(ema_decay=1.0))
    with pytest.raises(BadParameter, match="lr_final"):
        Trainer(make_config(lr_schedule="exponential", lr_final=0.0))
    with pytest.raises(BadParameter, match="chanels"):
        Trainer(make_config(model=dict(chanels=8)))  # a typo in the [model] table
    with pytest.raises(BadParameter, match="dropout"):
        Trainer(make_config(model=dict(dropout=1.5)))
    with pytest.raises(BadParameter, match="fp16"):
        Trainer(make_config(mixed_precision="fp16"))  # no GPU here
    with pytest.raises(UserError, match="label"):
        Trainer(make_config(data_size=32, condition="label"), dataset=_OneClass())


class _OneClass(torch.utils.data.Dataset):
    num_classes = 1

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"image": torch.zeros(3, 16, 16), "label": 0}


# -- the exported model ---------------------------------------------------------------------------------------------

def test_exported_model_folder(make_config, tmp_path):
    cfg = make_config(steps=3, condition="none")
    tr = Trainer(cfg)
    path = tr.fit()
    assert path == tmp_path / "run" / "model"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    conf = json.loads((path / "config.json").read_text())
    assert conf["format"] == MODEL_FORMAT == "noisebrush.model/1"
    assert conf["unet"] == tr.net_config.to_dict()
    assert conf["condition"] == "none" and conf["classes"] is None and conf["text_encoder"] is None
    assert conf["sigma_data"] == cfg.sigma_data and conf["resolution"] == 16
    prov = conf["provenance"]
    assert prov["steps"] == 3 and prov["data"] == "builtin" and prov["processes"] == 1
    assert prov["precision"] == "no" and prov["config"] == cfg.to_dict()
    assert {"noisebrush", "train_seconds", "hardware"} <= prov.keys()
    assert set(prov["cpu"]) == {"model", "flags", "bf16_native"}  # what the CPU offers, beside what was used

    with safetensors.safe_open(str(path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    sd = safetensors.torch.load_file(str(path / "model.safetensors"))
    assert keys == set(sd)
    net = UNet(UNetConfig.from_dict(conf["unet"]))
    net.load_state_dict(sd, strict=True)
    _assert_same(sd, _clone(tr.ema.state_dict()), "exported (EMA) weight")
    assert any(not torch.equal(v, tr.net.state_dict()[k]) for k, v in sd.items())  # EMA, not the raw weights
    # the exported network runs
    with torch.no_grad():
        y = net.eval()(torch.randn(2, 3, 16, 16), torch.zeros(2))
    assert y.shape == (2, 3, 16, 16) and torch.isfinite(y).all()


def test_exported_model_with_labels(make_config):
    path = Trainer(make_config(steps=1)).fit()
    conf = json.loads((path / "config.json").read_text())
    assert conf["condition"] == "label" and conf["unet"]["label_dim"] == len(conf["classes"]) >= 2


class _FakeText:
    """A stand-in text encoder (the real one loads a sentence-transformers model): tokens from a CRC of the word."""
    dim, name, max_tokens = 12, "fake-encoder", 4

    def encode(self, captions):
        tok = torch.zeros(len(captions), self.max_tokens, self.dim)
        mask = torch.zeros(len(captions), self.max_tokens, dtype=torch.bool)
        for i, c in enumerate(captions):
            for j, w in enumerate(c.split()[: self.max_tokens]):
                g = torch.Generator().manual_seed(zlib.crc32(w.encode()))
                tok[i, j] = torch.randn(self.dim, generator=g)
                mask[i, j] = True
        return tok, mask


def test_text_condition_with_a_stub_encoder(make_config):
    tr = Trainer(make_config(steps=2, condition="text", model=dict(cross_attn_resolutions=[8])),
                 text_encoder=_FakeText())
    assert tr.net_config.text_dim == 12
    path = tr.fit()
    conf = json.loads((path / "config.json").read_text())
    assert conf["condition"] == "text" and conf["text_encoder"] == {"name": "fake-encoder", "max_tokens": 4}
    assert tr.skipped == 0


# -- penalties and dropout ------------------------------------------------------------------------------------------

def _capture_step(trainer):
    """Record the gradients and weights that the optimizer is handed at each step."""
    seen = []
    real = trainer.opt.step

    def step(*a, **k):
        seen.append(([p.grad.detach().clone() for p in trainer.net.parameters()],
                     [p.detach().clone() for p in trainer.net.parameters()]))
        return real(*a, **k)

    trainer.opt.step = step
    return seen


@pytest.mark.parametrize("accum", [1, 2])
def test_l1_adds_its_gradient_to_the_decayed_weights(make_config, accum):
    # Two identical runs; the penalty is switched on in one of them at the third step (from the first step on,
    # the data gradient reaches every weight: at initialisation the zero output gain blocks all but that gain).
    lam = 0.05
    grads = {}
    for l1 in (0.0, lam):
        tr = Trainer(make_config(f"l1_{l1}", l1=lam, grad_clip=0.0, grad_accum=accum))
        tr.cfg.l1 = 0.0
        seen = _capture_step(tr)
        tr.train_step(), tr.train_step()
        tr.cfg.l1 = l1
        tr.train_step()
        grads[l1], weights = seen[2]
    n_decayed = 0
    for p, g0, g1, w in zip(tr.net.parameters(), grads[0.0], grads[lam], weights):
        if p.ndim >= 2:  # λ·Σ|w| over matrices and kernels: ∂/∂w = λ·sign(w), once per step whatever accum is
            torch.testing.assert_close(g1 - g0, lam * torch.sign(w), rtol=0, atol=1e-6)
            n_decayed += int(bool(g0.abs().max() > 0))
        else:            # gains are not penalised
            assert torch.equal(g1, g0)
    assert n_decayed > 10


def test_l1_makes_the_weights_sparser(make_config):
    # MPConv renormalises every weight to unit RMS per output channel, so a penalty cannot shrink the network's
    # function; what L1 can (and should) do is concentrate each weight vector on fewer entries:
    # Σ|w| / (√n·‖w‖) falls (and so does the raw Σ|w|).
    @torch.no_grad()
    def sparsity(tr):
        r = [p.abs().sum() / (p.numel() ** 0.5 * p.norm()) for p in tr.net.parameters() if p.ndim >= 2]
        return float(sum(r) / len(r)), float(sum(p.abs().sum() for p in tr.net.parameters() if p.ndim >= 2))

    out = {}
    for l1 in (0.0, 0.1):
        tr = Trainer(make_config(f"l1_{l1}", l1=l1, lr=1e-2, steps=8))
        for _ in range(8):
            tr.train_step()
        out[l1] = sparsity(tr)
    (ratio0, sum0), (ratio1, sum1) = out[0.0], out[0.1]
    assert ratio1 < ratio0 - 0.01, out
    assert sum1 < sum0, out


def test_weight_decay_is_decoupled_and_only_on_decayed_params(make_config):
    lr, wd = 1e-2, 0.1
    after, seen = {}, {}
    for w in (0.0, wd):
        tr = Trainer(make_config(f"wd_{w}", weight_decay=w, lr=lr, grad_clip=0.0))
        tr.net.project_ = lambda: None  # look at AdamW's update itself, before the weight projection
        seen[w] = _capture_step(tr)
        tr.train_step()
        after[w] = [p.detach().clone() for p in tr.net.parameters()]
    grads0, w_pre = seen[0.0][0]
    grads1, w_pre1 = seen[wd][0]
    for p, a0, a1, g0, g1, pre, pre1 in zip(tr.net.parameters(), after[0.0], after[wd], grads0, grads1, w_pre,
                                            w_pre1):
        assert torch.equal(g0, g1) and torch.equal(pre, pre1)  # the decay does not touch the loss
        if p.ndim >= 2:  # AdamW: w ← w·(1 − lr·wd) − Adam update
            torch.testing.assert_close(a0 - a1, lr * wd * pre, rtol=1e-3, atol=1e-7)
        else:
            assert torch.equal(a0, a1)


def test_dropout_masks_depend_on_seed_and_step_only(make_config):
    def one_step(seed_for_masks, dropout, disturb=False):
        tr = Trainer(make_config(f"d{seed_for_masks}_{dropout}_{disturb}", model=dict(dropout=dropout)))
        _fixed(tr, 8)  # data, σ and noise fixed: only the dropout masks can depend on cfg.seed now
        tr.cfg.seed = seed_for_masks
        for _ in range(3):  # at step 1 only the output gain learns (it starts at 0 and blocks the other gradients)
            if disturb:
                torch.manual_seed(987)
                torch.randn(1000)
            tr.train_step()
        return _clone(tr.net.state_dict())

    base = one_step(0, 0.5)
    _assert_same(one_step(0, 0.5, disturb=True), base, "same seed")  # independent of the global RNG state
    other = one_step(1, 0.5)
    assert any(not torch.equal(v, other[k]) for k, v in base.items())  # another seed: other masks
    no_drop = one_step(0, 0.0)
    assert any(not torch.equal(v, no_drop[k]) for k, v in base.items())  # dropout was applied at all
    _assert_same(one_step(1, 0.0), no_drop, "no dropout")  # … and it was the only use of the seed here


# -- samples --------------------------------------------------------------------------------------------------------

def test_sample_grid_written(make_config, tmp_path):
    tr = Trainer(make_config(steps=2, sample_every=2, sample_steps=2))
    tr.fit()
    grid = tmp_path / "run" / "samples" / "step-0000002.png"
    assert sorted(p.name for p in grid.parent.iterdir()) == [grid.name]
    with Image.open(grid) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (4 * 16 + 5 * 2, 4 * 16 + 5 * 2)  # 16 samples, 4 columns, 2 px padding


# -- fresh processes: exact resume after SIGKILL, and two processes against one ---------------------------------------

SCRIPT = '''
import json, sys, time
import torch
torch.set_num_threads(1)
from noisebrush.train import Trainer, TrainConfig

args = json.loads(sys.argv[1])
kw = {}
if args.get("text_encoder"):  # "module:Class", a stub encoder from the tests (the real one loads a model)
    import importlib
    sys.path.insert(0, args["root"])
    module, name = args["text_encoder"].split(":")
    kw["text_encoder"] = getattr(importlib.import_module(module), name)()
trainer = Trainer(TrainConfig(**args["config"]), resume=args.get("resume", False), **kw)


def progress(step, row):
    if step >= args.get("sleep_from", 1 << 60):
        time.sleep(args["sleep"])  # give the test time to kill this process here


trainer.fit(progress)
if trainer.acc.is_main_process:
    print("RESULT " + json.dumps({"processes": trainer.acc.num_processes, "micro": trainer.micro,
                                  "distributed": str(trainer.acc.distributed_type), "skipped": trainer.skipped}))
trainer.close()
if trainer.acc.num_processes > 1:
    from noisebrush.train import leave_worker
    leave_worker(0)  # torch's gloo teardown at exit aborts now and then; see its docstring
'''


def _script(tmp_path):
    path = tmp_path / "train_script.py"
    path.write_text(SCRIPT)
    return path


def _result(proc):
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _tensors(path):
    return safetensors.torch.load_file(str(path))


def _logged_steps(run):
    """Steps in log.csv, read tolerantly (the file may be mid-append)."""
    try:
        lines = (run / "log.csv").read_text().splitlines()[1:]
    except FileNotFoundError:
        return []
    return [int(x.split(",")[0]) for x in lines if x.split(",")[0].isdigit()]


# a GAN's two networks, two optimizers and (Diffusion-GAN) its adaptive depth must come back as exactly
GAN_KW = {"ddgan": dict(method="ddgan", disc=dict(channels=8, channel_mult=[1, 2, 2]), r1_every=3),
          "diffusion-gan": dict(method="diffusion-gan", disc=dict(channels=8, channel_mult=[1, 2, 2]), r1_every=3,
                                ada_every=5, ada_kimg=0.05, ada_t_min=10)}


@pytest.mark.parametrize("method", ["diffusion", "ddgan", "diffusion-gan"])
def test_exact_resume_after_sigkill(make_config, tmp_path, subprocess_env, run_script, method):
    script = _script(tmp_path)
    # dropout, condition dropout, several epochs over the data (12 × 8 samples of 32) and a warmup + cosine LR:
    # every piece of randomness and state has to come back
    kw = dict(steps=12, checkpoint_every=4, log_every=2, keep_last=5, lr_schedule="cosine", warmup=3,
              model=dict(dropout=0.1), cond_drop=0.25, **GAN_KW.get(method, {}))
    ref_cfg, run_cfg = make_config("ref", **kw).to_dict(), make_config("run", **kw).to_dict()
    run = tmp_path / "run"

    ref = subprocess.Popen([sys.executable, str(script), json.dumps({"config": ref_cfg})], env=subprocess_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen([sys.executable, str(script), json.dumps({"config": run_cfg, "sleep": 10, "sleep_from": 6})],
                              env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # kill it once the step-4 checkpoint exists and row 6 (written after that checkpoint) is in the log; it
        # sleeps after step 6, so the kill lands between the step-4 and step-8 checkpoints
        deadline = time.monotonic() + 90
        while not (latest_checkpoint(run) is not None and 6 in _logged_steps(run)):
            assert victim.poll() is None, f"the run ended early:\n{victim.stderr.read()}"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    killed_at = [s for s, _ in list_checkpoints(run)][-1]
    assert killed_at == 4 and not (run / "model").exists()
    assert _logged_steps(run) == [2, 4, 6]  # row 6 is past the checkpoint: the resumed run must drop it

    run_script(script, json.dumps({"config": run_cfg, "resume": True}))
    out, err = ref.communicate(timeout=120)
    assert ref.returncode == 0, err[-4000:]

    ref_dir = tmp_path / "ref"
    _assert_same(_tensors(run / "model" / "model.safetensors"), _tensors(ref_dir / "model" / "model.safetensors"),
                 "exported EMA")
    last, ref_last = run / "checkpoints" / "step-0000012", ref_dir / "checkpoints" / "step-0000012"
    names = ["model.safetensors", "ema.safetensors", "state.safetensors"]  # weights, EMA, Adam moments, RNG
    if method != "diffusion":
        names.append("part-disc.safetensors")  # the discriminator and its optimizer
    for name in names:
        _assert_same(_tensors(last / name), _tensors(ref_last / name), name)
    a, b = (json.loads((p / "state.json").read_text()) for p in (last, ref_last))
    if method == "diffusion-gan":  # the depth and the sign counters between its updates came back (the step-4
        # checkpoint held 4 steps' counts, the end 2: ada_every = 5)
        assert a["objective"] == b["objective"] and a["objective"]["sign_n"] == 2 * 8
    for key in ("step", "skipped", "data", "optimizer", "scheduler", "ema_updates", "config", "objective"):
        if key == "config":
            a[key]["out_dir"] = b[key]["out_dir"]
        assert a[key] == b[key], key

    rows, ref_rows = _rows(run), _rows(ref_dir)
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12]  # no duplicated rows after the resume
    for r, q in zip(rows, ref_rows):
        for k in ("step", "loss", "loss_s0", "loss_s1", "loss_s2", "loss_s3", "loss_s4", "loss_s5", "lr",
                  "grad_norm", "skipped", *(("d_loss", "g_loss", "d_real", "d_fake", "r1", "ada_t", "r_d")
                                            if method != "diffusion" else ())):
            assert r[k] == q[k], (k, r, q)


def _train(run_script, script, cfg, launcher=(), **extra):
    return _result(run_script(script, json.dumps({"config": cfg, **extra}), launcher=launcher, timeout=600))


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STUB_TEXT = dict(text_encoder="tests.train.test_video:_Text", root=ROOT)  # the video and shape tests' stub encoder


def _every_model_type(case):
    """(tiny config overrides, script extras) of each model type for the two-process test: the task's own tests'
    config (an SR stage: test_objectives.SR; clips: test_video.VIDEO; shapes: test_shape.SHAPE), no dropout (its
    masks are drawn per process; everything else is a function of the global sample)."""
    from tests.train.test_objectives import SR
    from tests.train.test_shape import SHAPE
    from tests.train.test_video import VIDEO

    # clips: 4 of the 8 samples of a step are pictures, so the first process trains on pictures only (the layout of
    # configs/video.toml on two processes: 6 of 12) — its temporal layers get no gradient there
    # Diffusion-GAN: r_d (D's signs, summed over the processes) at step 3, so the step-4 checkpoint holds one
    # step's sign counters, which must be the sum over both processes
    task = {"diffusion": ({}, {}), "ddgan": (GAN_KW["ddgan"], {}),
            "diffusion-gan": ({**GAN_KW["diffusion-gan"], "ada_every": 3}, {}), "sr": (SR, {}),
            "video": ({**VIDEO, "joint_images": 4}, STUB_TEXT), "shape": (SHAPE, STUB_TEXT)}
    kw, extra = task[case]
    return {**kw, "model": {**kw.get("model", {}), "dropout": 0.0}}, extra


@pytest.mark.parametrize("case", ["diffusion", "ddgan", "diffusion-gan", "sr", "video", "shape"])
def test_two_processes_match_one(make_config, tmp_path, run_script, free_port, case):
    """Every model type — pictures, DDGAN, Diffusion-GAN, an SR stage, clips, shapes — trained with a global batch
    of 8 in one process and in two (4 + 4, gloo on CPU) ends with the same weights, EMA (and discriminator) and
    logged losses."""
    script = _script(tmp_path)
    task, extra = _every_model_type(case)
    kw = {**task, **dict(steps=4, batch_size=8, lr_schedule="cosine", warmup=1, log_every=2)}
    one = _train(run_script, script, make_config("one", **kw).to_dict(), **extra)
    two = _train(run_script, script, make_config("two", **kw).to_dict(), **extra,
                 launcher=("-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                           str(free_port())))
    assert one["processes"] == 1 and one["micro"] == 8
    assert two["processes"] == 2 and two["micro"] == 4 and "MULTI_CPU" in two["distributed"]
    assert one["skipped"] == two["skipped"] == 0
    gan = case in GAN_KW
    for sub in ("model/model.safetensors", "checkpoints/step-0000004/model.safetensors",
                "checkpoints/step-0000004/ema.safetensors",
                *(("checkpoints/step-0000004/part-disc.safetensors",) if gan else ())):
        a, b = _tensors(tmp_path / "one" / sub), _tensors(tmp_path / "two" / sub)
        assert a.keys() == b.keys()
        # a GAN's Adam (β1 = 0.5, ε small against its tiny gradients) turns the float rounding of a 2-process
        # all-reduce into up to a learning rate per step on near-zero gradient elements (measured: 6e-4 after 4
        # steps at lr 2e-3, on weights of magnitude ~1); diffusion stays within 1e-4
        tol = dict(rtol=1e-3, atol=2e-3) if gan else dict(rtol=1e-4, atol=1e-5)
        for k in a:
            torch.testing.assert_close(b[k], a[k], **tol, msg=f"{sub}: {k}")
    # the log's losses are summed over both processes: the same global numbers
    rows_one, rows_two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["step"] for r in rows_one] == [r["step"] for r in rows_two] == ["2", "4"]
    for r, q in zip(rows_one, rows_two):
        assert float(q["loss"]) == pytest.approx(float(r["loss"]), rel=1e-4)
        for i in range(len(SIGMA_BUCKETS) + 1):
            assert (r[f"loss_s{i}"] == "") == (q[f"loss_s{i}"] == "")
        if case == "diffusion-gan":  # r_d over all 8 samples' signs, and the same depth (in 4 steps r_d stays
            # below ada_target, so T stays at its floor either way: the counters' all-reduce is not put to the test)
            assert (q["ada_t"], q["r_d"]) == (r["ada_t"], r["r_d"])
    if case == "diffusion-gan":
        assert rows_two[-1]["r_d"] != ""  # the step-3 update is in the step-4 row
    # what a checkpoint keeps besides the weights (Diffusion-GAN: T and step 4's sign counters, 8 signs from the
    # two processes together) is the same, so a resume on any number of processes goes on alike
    a, b = (json.loads((tmp_path / run / "checkpoints/step-0000004/state.json").read_text()) for run in ("one", "two"))
    assert b["objective"] == pytest.approx(a["objective"])
    if case == "diffusion-gan":
        assert b["objective"]["sign_n"] == 8


def test_a_run_folder_that_cannot_be_written_at_the_end_keeps_the_model(make_config, tmp_path, monkeypatch):
    """The model of a finished run goes to the rescue folder, named in one UserError line, when its own place
    cannot be written any more (before: a PermissionError traceback, and the model lost)."""
    import tempfile

    from noisebrush.io import model_folder

    def refuse(path, *, what, folder=False):
        raise UserError(f"{path}: cannot write here ({what}: Permission denied)")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(model_folder, "check_writable", refuse)
    tr = Trainer(make_config(steps=2))
    with pytest.raises(UserError, match="the trained model is kept in") as e:
        tr.fit()
    msg = str(e.value)
    assert "\n" not in msg and "Permission denied" in msg
    (kept,) = (tmp_path / "tmp" / "noisebrush-rescued").iterdir()
    assert str(kept) in msg
    assert model_folder.read_config(kept)["network"] == "unet" and (kept / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "model").exists()


# -- caption families (issue 13) ----------------------------------------------------------------------------------------

class _PhrasingText(_FakeText):
    """The stub encoder with room for a whole phrasing and the no-memo path the trainer uses for caption families;
    it records which path each batch took."""
    max_tokens = 16

    def __init__(self):
        self.calls = []

    def encode(self, captions):
        self.calls.append(("encode", list(captions)))
        return super().encode(captions)

    def encode_uncached(self, captions):
        self.calls.append(("uncached", list(captions)))
        return super().encode(captions)


FAMILY = dict(condition="text", captions="family", model=dict(cross_attn_resolutions=[8]))


def test_family_captions_are_drawn_per_sample_and_bypass_the_cache(make_config):
    enc = _PhrasingText()
    tr = Trainer(make_config(steps=2, **FAMILY), text_encoder=enc)
    assert enc.calls == []  # a family run does not pre-encode the data set's captions
    whole = tr.batch(range(16, 24))["captions"]
    assert enc.calls == [("uncached", whole)]
    # sample k's phrasing depends on (seed, k) only: the same in another split of the batch, in any order
    assert tr.batch(range(20, 24))["captions"] == whole[4:]
    ds, obj = tr.objective.dataset, tr.objective
    canonical = [ds.caption(obj.stream.item(k)[0]) for k in range(16, 24)]
    assert whole != canonical
    # the same item as another sample (another step or place in the batch) is phrased anew
    index = obj.stream.item(16)[0]
    assert len({obj.caption(k, index) for k in range(100)}) > 20
    # template runs keep the data set's captions, through the cached path
    enc2 = _PhrasingText()
    tpl = Trainer(make_config("tpl", steps=2, condition="text", model=dict(cross_attn_resolutions=[8])),
                  text_encoder=enc2)
    assert tpl.batch(range(16, 24))["captions"] == canonical
    assert enc2.calls[-1] == ("encode", canonical)


def test_text_noise_adds_the_streams_noise_to_real_tokens_only(make_config):
    plain = Trainer(make_config("plain", steps=2, **FAMILY), text_encoder=_PhrasingText())
    noisy = Trainer(make_config("noisy", steps=2, text_noise=0.1, **FAMILY), text_encoder=_PhrasingText())
    a, b = plain.batch(range(8)), noisy.batch(range(8))
    assert a["captions"] == b["captions"]
    mask = a["cond"]["text_mask"]
    assert not mask.all() and torch.equal(mask, b["cond"]["text_mask"])
    eps = torch.stack([noisy.objective.stream.token_noise(k, a["cond"]["text"].shape[1:]) for k in range(8)])
    want = a["cond"]["text"] + 0.1 * eps * mask.unsqueeze(-1)
    assert torch.equal(b["cond"]["text"], want)
    assert torch.equal(b["cond"]["text"][~mask], torch.zeros_like(b["cond"]["text"][~mask]))  # padding stays zero


def test_family_run_resumes_bit_identically(make_config, tmp_path):
    """A caption-family run (with embedding noise) stopped after its step-2 checkpoint and resumed gives the same
    weights, EMA and optimizer state as one that ran through: phrasings and noise come from (seed, sample) only."""
    kw = dict(steps=5, checkpoint_every=2, log_every=1, keep_last=5, lr_schedule="cosine", warmup=1,
              cond_drop=0.25, text_noise=0.05, **FAMILY)
    ref = Trainer(make_config("ref", **kw), text_encoder=_PhrasingText())
    ref.fit()

    def crash(step, row):
        if step == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Trainer(make_config("run", **kw), text_encoder=_PhrasingText()).fit(crash)
    tr = Trainer(make_config("run", **kw), resume=True, text_encoder=_PhrasingText())
    assert tr.step == 2
    tr.fit()
    _assert_same(_clone(tr.net.state_dict()), _clone(ref.net.state_dict()), "weight")
    _assert_same(_clone(tr.ema.state_dict()), _clone(ref.ema.state_dict()), "ema")
    _assert_same(_opt_tensors(tr), _opt_tensors(ref), "optimizer")
    rows, ref_rows = _rows(tmp_path / "run"), _rows(tmp_path / "ref")
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]
    # and the phrasings mattered: a template run of the same config ends elsewhere
    other = Trainer(make_config("tpl", **{**kw, "captions": "template"}), text_encoder=_PhrasingText())
    other.fit()
    assert any(not torch.equal(v, ref.net.state_dict()[k]) for k, v in other.net.state_dict().items())
    conf = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert conf["provenance"]["config"]["captions"] == "family"


def test_a_family_run_warns_when_its_phrasings_are_cut(make_config):
    """With max_tokens = 16, a fifth of the landscapes and most swirls lose their last words (background, time of
    day) to the encoder's cut: said once, at the start, with the max_tokens that keeps them."""
    from noisebrush.errors import NoisebrushWarning

    class Counting(_PhrasingText):
        def word_pieces(self, caption):  # the stub's "word pieces": words, plus one per hyphen
            return len(caption.split()) + 2 * caption.count("-")

    enc = Counting()
    enc.max_tokens = 16
    with pytest.warns(NoisebrushWarning, match=r"% of the phrasings are longer than max_tokens = 16 keeps"):
        Trainer(make_config("short", steps=2, **FAMILY), text_encoder=enc)
    enc = Counting()
    enc.max_tokens = 24
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoisebrushWarning)
        Trainer(make_config("long", steps=2, **FAMILY), text_encoder=enc)

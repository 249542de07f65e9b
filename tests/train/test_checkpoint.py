"""Checkpoints: exact round trip, pruning, atomic writes, and no pickle anywhere."""
import hashlib
import json
import pickle
import random

import pytest
import safetensors
import safetensors.torch
import torch

import noisebrush.train.checkpoint as ckpt
from noisebrush.errors import UserError
from noisebrush.train.checkpoint import FORMAT, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from noisebrush.train.ema import EMA
from noisebrush.train.lr import make_scheduler

FILES = {"model.safetensors", "ema.safetensors", "state.safetensors", "state.json"}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.lin = torch.nn.Linear(4, 2)
        self.gain = torch.nn.Parameter(torch.zeros([]))
        self.register_buffer("count", torch.tensor([7, 8], dtype=torch.int64))

    def forward(self, x):
        return self.lin(self.conv(x).mean((2, 3))) * (1 + self.gain)


def _setup(steps=3, seed=0):
    torch.manual_seed(seed)
    net = Net()
    ema = EMA(net, 0.9)
    decay = [p for p in net.parameters() if p.ndim >= 2]
    plain = [p for p in net.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": plain, "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.99))
    sched = make_scheduler(opt, "cosine", 20, warmup=4, final=0.05)
    for _ in range(steps):
        net(torch.randn(2, 3, 5, 5)).square().mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        ema.update(net)
    return net, ema, opt, sched


def _save(run, step, net, ema, opt, sched, keep_last=3, **state):
    state = {"skipped": 1, "train_seconds": 2.5, "data": {"seed": 0, "samples_seen": step * 8}, **state}
    return save_checkpoint(run, step, model=net, ema=ema, optimizer=opt, scheduler=sched, state=state,
                           keep_last=keep_last)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _entries(run):
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def test_round_trip_is_exact(tmp_path):
    net, ema, opt, sched = _setup()
    random.seed(1234)
    torch.manual_seed(99)
    rng, pyrng = torch.get_rng_state(), random.getstate()
    path = _save(tmp_path, 3, net, ema, opt, sched, config={"lr": 1e-2, "betas": [0.9, 0.99]})
    assert path == tmp_path / "checkpoints" / "step-0000003"
    assert {p.name for p in path.iterdir()} == FILES

    ck = load_checkpoint(path)
    assert ck["format"] == FORMAT and ck["step"] == 3 and ck["skipped"] == 1 and ck["train_seconds"] == 2.5
    assert ck["data"] == {"seed": 0, "samples_seen": 24}
    assert ck["config"] == {"lr": 1e-2, "betas": [0.9, 0.99]}

    # weights and EMA: same keys, dtypes and bits (the int64 buffer too)
    for saved, live in ((ck["model"], net.state_dict()), (ck["ema"], ema.state_dict())):
        assert saved.keys() == live.keys()
        for k in live:
            assert saved[k].dtype == live[k].dtype and torch.equal(saved[k], live[k]), k
    assert ck["ema_updates"] == ema.updates == 3

    # optimizer: loading into a fresh one reproduces every moment bit for bit
    net2, ema2, opt2, sched2 = _setup(steps=0, seed=5)
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys() and len(a["state"]) == 5
    for i in a["state"]:
        assert a["state"][i].keys() == b["state"][i].keys() == {"step", "exp_avg", "exp_avg_sq"}
        for name, v in a["state"][i].items():
            assert torch.equal(v, b["state"][i][name]), (i, name)

    # scheduler: same state, same LRs from here on
    sched2.load_state_dict(ck["scheduler"])
    assert sched2.state_dict() == sched.state_dict()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    for _ in range(6):
        opt.step(), opt2.step(), sched.step(), sched2.step()
        assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]

    # RNG states
    assert torch.equal(ck["rng_torch"], rng)
    assert ck["python_random"] == pyrng
    torch.manual_seed(0)
    torch.set_rng_state(ck["rng_torch"])
    x = torch.randn(5)
    torch.set_rng_state(rng)
    assert torch.equal(x, torch.randn(5))


def test_optimizer_steps_identically_after_reload(tmp_path):
    net, ema, opt, sched = _setup()
    ck = load_checkpoint(_save(tmp_path, 3, net, ema, opt, sched))
    net2, _, opt2, sched2 = _setup(steps=0, seed=5)
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    sched2.load_state_dict(ck["scheduler"])
    for _ in range(2):
        x = torch.randn(2, 3, 5, 5)
        for n, o, s in ((net, opt, sched), (net2, opt2, sched2)):
            n(x).square().mean().backward()
            o.step()
            o.zero_grad()
            s.step()
    for k, v in net.state_dict().items():
        assert torch.equal(v, net2.state_dict()[k]), k


def test_keep_last_prunes_oldest(tmp_path):
    net, ema, opt, sched = _setup(steps=1)
    for step in (10, 20, 30, 40, 50):
        _save(tmp_path, step, net, ema, opt, sched, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [40, 50]
    assert _entries(tmp_path) == ["step-0000040", "step-0000050"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-0000050"


def test_keep_last_zero_keeps_everything(tmp_path):
    net, ema, opt, sched = _setup(steps=1)
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, net, ema, opt, sched, keep_last=0)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1, 2, 3, 4]


def test_steps_sort_numerically(tmp_path):
    net, ema, opt, sched = _setup(steps=1)
    for step in (9_999_999, 100, 12_345_678):  # 8 digits still matches step-\d{7,}
        _save(tmp_path, step, net, ema, opt, sched, keep_last=0)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [100, 9_999_999, 12_345_678]


def test_resaving_a_step_replaces_it(tmp_path):
    net, ema, opt, sched = _setup(steps=1)
    _save(tmp_path, 5, net, ema, opt, sched)
    with torch.no_grad():
        net.lin.weight.add_(1.0)
    _save(tmp_path, 5, net, ema, opt, sched)
    assert _entries(tmp_path) == ["step-0000005"]
    assert torch.equal(load_checkpoint(tmp_path / "checkpoints" / "step-0000005")["model"]["lin.weight"],
                       net.lin.weight)


def _fail_on_call(real, n, exc):
    """A wrapper of ``real`` that works n-1 times, then raises ``exc`` (after doing the real work)."""
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            real(*args, **kwargs)
            raise exc
        return real(*args, **kwargs)

    return wrapper, calls


@pytest.mark.parametrize("n", [1, 2, 3])
def test_failure_while_writing_tensors_leaves_nothing(tmp_path, monkeypatch, n):
    net, ema, opt, sched = _setup()
    prev = _save(tmp_path, 2, net, ema, opt, sched)
    before = _digest(prev)
    wrapper, calls = _fail_on_call(safetensors.torch.save_file, n, OSError("disk full"))
    monkeypatch.setattr(ckpt, "save_file", wrapper)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 3, net, ema, opt, sched)
    assert calls["n"] == n
    assert _entries(tmp_path) == ["step-0000002"]  # no step-0000003, no temporary folder
    assert latest_checkpoint(tmp_path) == prev and _digest(prev) == before
    load_checkpoint(prev)


@pytest.mark.parametrize("exc", [OSError("no space left"), KeyboardInterrupt()])
def test_interrupted_state_json_leaves_nothing(tmp_path, monkeypatch, exc):
    net, ema, opt, sched = _setup()
    prev = _save(tmp_path, 2, net, ema, opt, sched)
    before = _digest(prev)
    real_dump = json.dump

    def half_dump(obj, f, **kw):
        f.write(json.dumps(obj, **kw)[:50])  # a torn state.json …
        raise exc                            # … and then the failure (or Ctrl-C)

    monkeypatch.setattr(ckpt.json, "dump", half_dump)
    with pytest.raises(type(exc)):
        _save(tmp_path, 3, net, ema, opt, sched)
    monkeypatch.setattr(ckpt.json, "dump", real_dump)
    assert _entries(tmp_path) == ["step-0000002"]
    assert latest_checkpoint(tmp_path) == prev and _digest(prev) == before
    # and the next save still works
    _save(tmp_path, 3, net, ema, opt, sched)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]


def test_leftovers_of_a_killed_save_are_ignored_then_removed(tmp_path):
    net, ema, opt, sched = _setup()
    prev = _save(tmp_path, 2, net, ema, opt, sched)
    root = tmp_path / "checkpoints"
    # what SIGKILL during a save leaves: a hidden temporary folder (even one that got as far as state.json)
    tmp = root / ".step-0000003.x1y2.tmp"
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"partial")
    (tmp / "state.json").write_text(json.dumps({"format": FORMAT, "step": 3}))
    assert latest_checkpoint(tmp_path) == prev
    _save(tmp_path, 4, net, ema, opt, sched)
    assert _entries(tmp_path) == ["step-0000002", "step-0000004"]


def test_folder_without_state_json_is_ignored(tmp_path):
    net, ema, opt, sched = _setup()
    prev = _save(tmp_path, 2, net, ema, opt, sched)
    torn = tmp_path / "checkpoints" / "step-0000009"
    torn.mkdir()
    safetensors.torch.save_file({"x": torch.zeros(1)}, str(torn / "model.safetensors"))
    (tmp_path / "checkpoints" / "step-12").mkdir()           # not 7 digits
    (tmp_path / "checkpoints" / "step-0000011.bak").mkdir()  # not the pattern
    assert latest_checkpoint(tmp_path) == prev
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2]
    with pytest.raises(UserError, match="no state.json"):
        load_checkpoint(torn)


def test_no_checkpoints(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    assert list_checkpoints(tmp_path) == []
    with pytest.raises(UserError):
        load_checkpoint(tmp_path / "missing")


def _good(tmp_path):
    net, ema, opt, sched = _setup()
    return _save(tmp_path, 2, net, ema, opt, sched)


def test_other_format_is_a_user_error(tmp_path):
    path = _good(tmp_path)
    doc = json.loads((path / "state.json").read_text())
    doc["format"] = "noisebrush.checkpoint/99"
    (path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="noisebrush.checkpoint/99"):
        load_checkpoint(path)


def test_unparsable_state_json_is_a_user_error(tmp_path):
    path = _good(tmp_path)
    (path / "state.json").write_text('{"format": "noisebrush.checkpoint/1", "step": ')
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(path)


def test_missing_tensor_file_is_a_user_error(tmp_path):
    path = _good(tmp_path)
    (path / "ema.safetensors").unlink()
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(path)


def test_corrupt_tensor_file_is_a_user_error(tmp_path):
    path = _good(tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError):
        load_checkpoint(path)


def test_nothing_is_pickled(tmp_path, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("pickle used")

    for mod, name in ((pickle, "dump"), (pickle, "dumps"), (torch, "save")):
        monkeypatch.setattr(mod, name, forbidden)
    path = _good(tmp_path)
    for mod, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(mod, name, forbidden)
    ck = load_checkpoint(path)
    assert ck["step"] == 2

    assert {p.name for p in path.iterdir()} == FILES
    for p in path.iterdir():
        head = p.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", p  # neither a pickle stream nor a torch zip archive
        if p.suffix == ".safetensors":
            with safetensors.safe_open(str(p), framework="pt") as f:
                assert list(f.keys())
        else:
            doc = json.loads(p.read_text())
            assert doc["format"] == FORMAT
    with safetensors.safe_open(str(path / "state.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "rng.torch" in keys and {"optimizer.0.exp_avg", "optimizer.0.exp_avg_sq", "optimizer.0.step"} <= keys

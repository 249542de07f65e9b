"""noisebrush.paint.options: budgets of the common options, and the memory estimate and check before painting."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from noisebrush.errors import BadParameter, NoisebrushWarning
from noisebrush.io import model_folder
from noisebrush.nets.unet import UNet, UNetConfig
from noisebrush.paint.options import ModelSchedule, check_common, check_memory, memory_needed

# a 3-level image network at 32 px (sizes up to 256) with self-attention at level 2: wide enough that activations,
# not constants, dominate what is measured
NET = dict(dims=2, in_channels=3, channels=24, channel_mult=(1, 2, 2), blocks=1, resolution=32, attn_resolutions=(8,),
           cross_attn_resolutions=(), channels_per_head=24, label_dim=3)


def _common(**kw):
    args = dict(steps=None, seed=0, n=1, sampler=None, cfg=3.0, sigma_min=None, sigma_max=None,
                schedule=ModelSchedule())
    return check_common("", **{**args, **kw})


def test_steps_and_n_follow_the_budget_table():
    assert _common(steps=10_000)["steps"] == 10_000
    for kw, name in ((dict(steps=10_001), "steps"), (dict(n=10_001), "n"), (dict(steps=0), "steps")):
        with pytest.raises(BadParameter, match=f"^{name}: a whole number from 1 to 10000"):
            _common(**kw)
    with pytest.warns(NoisebrushWarning, match="^steps 500 is far beyond the usual 200"):
        _common(steps=500)
    with pytest.warns(NoisebrushWarning, match="^n 100 is far beyond the usual 64"):
        _common(n=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _common(steps=200, n=64)  # the usual maxima: no warning


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A label model folder with seeded random weights (every gain on, so the network does real work)."""
    cfg = UNetConfig(**NET)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = UNet(cfg)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "gain" in name:
                p.fill_(1.0)
    path = tmp_path_factory.mktemp("mem") / "model"
    model_folder.write(path, net.state_dict(), {"network": "unet", "unet": cfg.to_dict(), "sigma_data": 0.5,
                                                "resolution": 32, "condition": "label", "classes": ["a", "b", "c"]})
    return path


@pytest.fixture(scope="module")
def pipe(model):
    import noisebrush

    return noisebrush.load(model, device="cpu")


def test_memory_estimate_grows_with_pixels_pictures_and_guidance(pipe):
    small, _ = memory_needed(pipe, (64, 64), n=1)
    big, _ = memory_needed(pipe, (256, 256), n=1)
    assert 15 * small < big < 17 * small  # 16× the pixels
    assert memory_needed(pipe, (64, 64), n=8)[0] > small
    assert memory_needed(pipe, (64, 64), n=1, cfg=1.0)[0] < small  # no unconditional twin


def test_memory_check_refuses_in_one_line_naming_the_size_and_the_limit(pipe, monkeypatch):
    monkeypatch.setenv("NOISEBRUSH_MEMORY_LIMIT", "20M")
    check_memory(pipe, (32, 32), n=1)  # a few MB
    with pytest.raises(BadParameter) as e:
        check_memory(pipe, (256, 256), n=4)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("size 256: needs about ") and msg.endswith(
        "MB, NOISEBRUSH_MEMORY_LIMIT is 20 MB (set NOISEBRUSH_MEMORY_LIMIT to change)"), msg
    with pytest.raises(BadParameter, match=r"^extend 8,8,8,8: needs about"):
        check_memory(pipe, (256, 192), name="extend", given="8,8,8,8")
    monkeypatch.setenv("NOISEBRUSH_MEMORY_LIMIT", "lots")
    with pytest.raises(BadParameter, match="^NOISEBRUSH_MEMORY_LIMIT: a size such as 8G"):
        check_memory(pipe, (64, 64))


def test_memory_check_uses_what_the_machine_has_free(pipe, monkeypatch):
    import noisebrush.paint.options as options

    monkeypatch.delenv("NOISEBRUSH_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(options, "free_memory", lambda dev: (10**6, "this machine has 1.0 MB free"))
    with pytest.raises(BadParameter, match=r"^size 128: needs about .* this machine has 1.0 MB free \(set"):
        check_memory(pipe, (128, 128))


_MEASURE = r"""
import gc, json, sys
import torch
import noisebrush
from noisebrush.paint.options import memory_needed


def status(key):  # kB lines of /proc/self/status: VmRSS now, VmHWM the peak since the last reset
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


pipe = noisebrush.load(sys.argv[1], device="cpu")
torch.set_num_threads(1)
size = int(sys.argv[2])
pipe.generate("a", steps=1, size=32, n=1)  # kernels and the first call's one-off allocations
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the resident memory now
before = status("VmRSS")
pipe.generate("a", steps=2, size=size, n=1)
peak = status("VmHWM")
print(json.dumps({"measured": peak - before, "estimate": memory_needed(pipe, (size, size), n=1, cfg=3.0)[0]}))
"""


@pytest.mark.parametrize("size", [128, 256])
def test_memory_estimate_is_an_upper_bound_of_the_measured_peak(model, size):
    """Paint in a fresh process and compare its peak resident memory (Linux's VmHWM, reset just before) above what
    it held before with the estimate: above it, but not absurdly (the check must not refuse what would fit)."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to measure a peak")
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(model), str(size)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    measured, estimate = got["measured"], got["estimate"]
    assert measured > 20e6, got  # the painting itself dominates what is measured
    assert measured <= estimate <= 8 * measured, got


def test_free_memory_and_the_limit_variable(monkeypatch):
    from noisebrush.devices import format_bytes, free_memory, parse_bytes

    monkeypatch.delenv("NOISEBRUSH_MEMORY_LIMIT", raising=False)
    free, words = free_memory("cpu")
    assert free > 0 and words == f"this machine has {format_bytes(free)} free"
    monkeypatch.setenv("NOISEBRUSH_MEMORY_LIMIT", "1.5GB")
    assert free_memory("cpu") == (1_500_000_000, "NOISEBRUSH_MEMORY_LIMIT is 1.5 GB")
    assert [parse_bytes(t) for t in ("8G", "500M", "2GiB", "1024", "64 kb")] == [8 * 10**9, 5 * 10**8, 2 * 2**30,
                                                                                  1024, 64_000]
    for bad in ("", "0", "-1G", "8Q", "G", "inf", "nan"):
        with pytest.raises(BadParameter, match="^NOISEBRUSH_MEMORY_LIMIT: a size such as 8G"):
            parse_bytes(bad)
    assert [format_bytes(b) for b in (38e9, 2.5e9, 750e6, 12e3, 12)] == ["38 GB", "2.5 GB", "750 MB", "12 kB",
                                                                         "12 bytes"]

"""LoRA through peft for the MPConv UNet: the file, merging (exact, additive), refusals."""
import copy
import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from noisebrush.errors import BadParameter, UserError
from noisebrush.nets.lora import (DEFAULT_RANK, add_lora, adapter_tensors, apply_loras, load_adapters_, parse_lora_spec,
                             read_lora, save_lora, target_names)
from noisebrush.nets.unet import UNet, UNetConfig

SMALL = dict(resolution=16, channels=8, channel_mult=[1, 2], blocks=1, attn_resolutions=[8],
             cross_attn_resolutions=[8], text_dim=8)


def _net(seed=0, **over):
    """A small text-conditioned UNet with non-zero gains (a fresh one outputs exactly 0)."""
    cfg = UNetConfig(**{**SMALL, **over})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = UNet(cfg)
    with torch.no_grad():
        net.out_gain.fill_(1.0)
        for m in net.modules():
            if hasattr(m, "emb_gain"):
                m.emb_gain.fill_(0.5)
    return net.eval()


def _inputs(n=2, res=16):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, res, res, generator=g)
    tok = torch.randn(n, 5, SMALL["text_dim"], generator=g)
    return x, torch.tensor([0.3, -0.7])[:n], tok, torch.ones(n, 5, dtype=torch.bool)


@torch.no_grad()
def _out(net):
    x, c, tok, mask = _inputs()
    return net(x, c, text=tok, text_mask=mask)


def _lora_file(path, net, seed=3, rank=4, scale=0.2, base_hash="abc"):
    """Inject adapters into a copy of ``net``, give B random values, write the file; returns the peft net."""
    wrapped = add_lora(copy.deepcopy(net), rank=rank, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    save_lora(path, adapter_tensors(wrapped), rank=rank, alpha=rank, unet_config=net.config.to_dict(),
              base_name="test", base_hash=base_hash, token="<t>", provenance={"steps": 1})
    return wrapped


def _config(net):
    return {"unet": net.config.to_dict()}


def test_parse_lora_spec():
    assert parse_lora_spec("style.safetensors") == (Path("style.safetensors"), 1.0)
    assert parse_lora_spec("style.safetensors:0.5") == (Path("style.safetensors"), 0.5)
    assert parse_lora_spec("a/b.safetensors:-1") == (Path("a/b.safetensors"), -1.0)
    assert parse_lora_spec("c:/loras/x.safetensors") == (Path("c:/loras/x.safetensors"), 1.0)  # ':' in a path
    assert parse_lora_spec("x:y.safetensors:2") == (Path("x:y.safetensors"), 2.0)
    for bad in ("", "  ", ":0.5", "a.safetensors:nan", "a.safetensors:inf", "a.safetensors:1e400"):
        with pytest.raises(BadParameter, match="--lora"):
            parse_lora_spec(bad)


def test_lora_spec_with_a_bad_weight_names_the_weight(tmp_path):
    """Issue 12 point 9: `--lora FILE:abc` said "no such LoRA file"; the weight is the problem."""
    f = tmp_path / "style.safetensors"
    f.write_bytes(b"x")
    for text in (f"{f}:abc", "missing.safetensors:abc", "style.safetensors:0.5x"):
        with pytest.raises(BadParameter) as e:
            parse_lora_spec(text)
        assert str(e.value) == f"--lora {text}: the weight after ':' must be a number, got {text.rsplit(':', 1)[1]!r}"
    odd = tmp_path / "my:style"  # a file whose own name has ':' and a word after it is still a file
    odd.write_bytes(b"x")
    assert parse_lora_spec(str(odd)) == (odd, 1.0)
    assert parse_lora_spec("c:\\loras\\x.safetensors") == (Path("c:\\loras\\x.safetensors"), 1.0)


def test_adapters_start_at_zero_and_only_they_train():
    net = _net()
    wrapped = add_lora(copy.deepcopy(net), rank=4)
    assert torch.equal(_out(wrapped), _out(net))  # B = 0: the adapted network computes what the base does
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    names = set(adapter_tensors(wrapped))
    assert names == set(target_names(net))
    assert "out_conv" in names and any(n.endswith("cross.kv") for n in names) and "emb_noise" not in names
    assert not any(n.endswith("emb_linear") for n in names)


def test_file_round_trip(tmp_path):
    net = _net()
    wrapped = _lora_file(tmp_path / "a.safetensors", net)
    lo = read_lora(tmp_path / "a.safetensors")
    assert lo["rank"] == 4 and lo["alpha"] == 4.0 and lo["meta"]["token"] == "<t>"
    assert lo["meta"]["format"] == "noisebrush.nets.lora/1" and lo["meta"]["base_hash"] == "abc"
    assert json.loads(lo["meta"]["unet"]) == net.config.to_dict()
    assert json.loads(lo["meta"]["provenance"]) == {"steps": 1}
    saved = adapter_tensors(wrapped)
    assert set(lo["adapters"]) == set(saved) == set(json.loads(lo["meta"]["targets"]))
    for name, (a, b) in saved.items():  # float16 in the file
        assert torch.equal(lo["adapters"][name][0], a.half().float())
        assert torch.equal(lo["adapters"][name][1], b.half().float())


def test_weight_zero_is_bit_identical_and_weight_one_equals_peft(tmp_path):
    net = _net()
    f = tmp_path / "a.safetensors"
    wrapped = _lora_file(f, net)
    base_out = _out(net)

    zero = copy.deepcopy(net)
    info = apply_loras(zero, _config(net), "abc", [(f, 0.0)])
    assert torch.equal(_out(zero), base_out)
    assert info[0]["weight"] == 0.0 and info[0]["file"] == str(f.resolve()) and len(info[0]["hash"]) == 10
    json.dumps(info)

    load_adapters_(wrapped, read_lora(f)["adapters"])  # the peft net with the file's (float16) values
    peft_out = _out(wrapped)
    merged = copy.deepcopy(net)
    apply_loras(merged, _config(net), "abc", [(f, 1.0)])
    merged_out = _out(merged)
    assert not torch.allclose(merged_out, base_out, atol=1e-3)  # the LoRA does change the picture
    torch.testing.assert_close(merged_out, peft_out, rtol=0, atol=1e-6)  # and merging is exact


def test_two_loras_add_in_weight_space(tmp_path):
    net = _net()
    f1, f2 = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    _lora_file(f1, net, seed=3)
    _lora_file(f2, net, seed=4, rank=2)
    both = copy.deepcopy(net)
    info = apply_loras(both, _config(net), "abc", [(f1, 0.5), (f2, -1.0)])
    assert [i["weight"] for i in info] == [0.5, -1.0] and info[1]["rank"] == 2
    d1, d2 = read_lora(f1)["adapters"], read_lora(f2)["adapters"]
    mods = dict(both.named_modules())
    for name, m in dict(net.named_modules()).items():
        if name in d1:
            w = m.weight
            expect = w + 0.5 * (d1[name][1] @ d1[name][0]).reshape(w.shape) \
                - 1.0 * (d2[name][1] @ d2[name][0]).reshape(w.shape)
            torch.testing.assert_close(mods[name].weight, expect, rtol=0, atol=1e-6)
    one_then_other = copy.deepcopy(net)
    apply_loras(one_then_other, _config(net), "abc", [(f2, -1.0)])
    apply_loras(one_then_other, _config(net), "abc", [(f1, 0.5)])
    torch.testing.assert_close(_out(one_then_other), _out(both), rtol=0, atol=1e-5)


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_another_architecture_is_refused_and_net_untouched(tmp_path):
    net = _net()
    other = _net(channels=16)
    good, bad = tmp_path / "good.safetensors", tmp_path / "other.safetensors"
    _lora_file(good, net)
    _lora_file(bad, other)
    target = copy.deepcopy(net)
    with pytest.raises(UserError) as e:
        apply_loras(target, _config(net), "abc", [(good, 1.0), (bad, 1.0)])
    assert "other.safetensors" in _one_line(e) and "another network" in str(e.value)
    assert torch.equal(_out(target), _out(net))  # checked before anything is merged


def test_other_weights_of_the_same_network_merge_with_a_warning(tmp_path, caplog):
    net = _net()
    f = tmp_path / "a.safetensors"
    _lora_file(f, net, base_hash="0123456789")
    with caplog.at_level(logging.WARNING, logger="noisebrush.nets.lora"):
        info = apply_loras(copy.deepcopy(net), _config(net), "fedcba9876", [(f, 1.0)])
    assert info[0]["base_hash"] == "0123456789"
    assert any("fedcba9876" in r.getMessage() for r in caplog.records)


def test_bad_files_are_one_line_errors(tmp_path):
    net = _net()
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    cases = [(tmp_path / "missing.safetensors", "no such LoRA file"), (garbage, "not a readable LoRA"),
             (foreign, "not a noisebrush LoRA"), (tmp_path, "not a file")]
    for path, words in cases:
        with pytest.raises(UserError) as e:
            apply_loras(copy.deepcopy(net), _config(net), "abc", [(path, 1.0)])
        assert str(path) in _one_line(e) and words in str(e.value)
    with pytest.raises(BadParameter, match="weight"):
        apply_loras(copy.deepcopy(net), _config(net), "abc", [(garbage, float("nan"))])


def test_builtin_architecture_lora_is_under_2_mb(tmp_path):
    from noisebrush.io.model_folder import BUILTIN, read_config

    conf = read_config(BUILTIN)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = UNet(UNetConfig.from_dict(conf["unet"]))
    wrapped = add_lora(net, rank=DEFAULT_RANK)
    path = save_lora(tmp_path / "builtin.safetensors", adapter_tensors(wrapped), rank=DEFAULT_RANK,
                     alpha=DEFAULT_RANK, unet_config=conf["unet"], base_name="builtin", base_hash="x")
    size = path.stat().st_size
    assert 500_000 < size < 2_000_000, size


def test_loras_on_a_baked_network(tmp_path):
    """Merging (apply_loras, peft merge) and running peft adapters on a baked network give the unbaked results."""
    net = _net()
    f = tmp_path / "a.safetensors"
    wrapped = _lora_file(f, net)
    load_adapters_(wrapped, read_lora(f)["adapters"])
    baked = copy.deepcopy(net).bake()
    assert torch.equal(_out(baked), _out(net))  # (bakes)
    plain = copy.deepcopy(net)
    apply_loras(baked, _config(net), "abc", [(f, 0.7)])
    apply_loras(plain, _config(net), "abc", [(f, 0.7)])
    assert torch.equal(_out(baked), _out(plain))
    baked_wrapped = copy.deepcopy(wrapped)
    baked_wrapped.bake()
    assert torch.equal(_out(baked_wrapped), _out(wrapped))  # active adapters swap the weight in: not stale
    for m in (baked_wrapped, wrapped):
        for layer in m.modules():
            if hasattr(layer, "merge") and hasattr(layer, "lora_A"):
                layer.merge()
    assert torch.equal(_out(baked_wrapped), _out(wrapped))

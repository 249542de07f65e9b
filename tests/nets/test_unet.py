"""Tests for the magnitude-preserving UNet (noisebrush.nets.unet) over 1, 2 and 3 spatial dimensions.

Only the public API is used (UNetConfig, UNet(config)(x, c_noise, labels=, vector=, text=, text_mask=, drop=)), so
the internals may change freely. Models are tiny (8 base channels, two levels, one block) and run on one thread.
"""

import copy
import json
import math

import pytest
import torch

from noisebrush.diffusion.precond import EDMPrecond
from noisebrush.errors import BadParameter
from noisebrush.nets.mp import MPConv
from noisebrush.nets.unet import UNet, UNetConfig

LABELS, VEC, TXT, TOK = 5, 6, 12, 5  # label_dim, vector_dim, text_dim, tokens per prompt




def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def tiny(dims=2, resolution=8, cond=False, **kw) -> UNetConfig:
    """Two levels (resolution, resolution/2) of 8 and 16 channels; self- and cross-attention at the lower level."""
    base = dict(dims=dims, in_channels=3, channels=8, channel_mult=(1, 2), blocks=1, resolution=resolution,
                attn_resolutions=(resolution // 2,), cross_attn_resolutions=(resolution // 2,), channels_per_head=8)
    if cond:
        base.update(label_dim=LABELS, vector_dim=VEC, text_dim=TXT)
    base.update(kw)
    return UNetConfig(**base)


def gains_to_one(net: torch.nn.Module) -> torch.nn.Module:
    """out_gain, every emb_gain and a clip network's temporal gains start at 0 (output exactly 0, no embedding
    modulation, no temporal mixing): switch them on (the temporal ones at 0.3, about where training takes them)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "gain" in name:
                p.fill_(0.3 if "time" in name else 1.0)
    return net


def live(cfg: UNetConfig) -> UNet:
    """A random-weight model with all gains 1, in eval mode."""
    return gains_to_one(UNet(cfg)).eval()


def conditions(n, seed=1):
    g = gen(seed)
    mask = torch.ones(n, TOK, dtype=torch.bool)
    for i in range(n):
        mask[i, 1 + i % (TOK - 1):] = False  # 1 … TOK-1 tokens valid
    mask[-1] = True
    return dict(labels=torch.randint(0, LABELS, (n,), generator=g), vector=torch.randn(n, VEC, generator=g),
                text=torch.randn(n, TOK, TXT, generator=g), text_mask=mask)


def inputs(shape, seed=0):
    g = gen(seed)
    return torch.randn(shape, generator=g), torch.randn(shape[0], generator=g)


SHAPES = {
    "1d": (dict(dims=1, resolution=16), (2, 3, 16)),
    "2d": (dict(dims=2, resolution=8), (2, 3, 8, 8)),
    "2d-rect": (dict(dims=2, resolution=8), (2, 3, 8, 12)),
    "3d": (dict(dims=3, resolution=8), (2, 3, 4, 8, 8)),
    "3d-factorized": (dict(dims=3, resolution=8, factorized=True), (2, 3, 3, 8, 8)),
}


# -- shapes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SHAPES)
def test_output_shape_equals_input_shape(case):
    kw, shape = SHAPES[case]
    net = live(tiny(cond=True, **kw))
    x, c_noise = inputs(shape)
    with torch.no_grad():
        y = net(x, c_noise, **conditions(shape[0]))
        assert y.shape == x.shape
        assert torch.isfinite(y).all()
        assert y.abs().max() > 0
        assert net(x, c_noise).shape == x.shape  # every condition is optional


def test_out_channels():
    net = live(tiny(out_channels=5))
    x, c = inputs((2, 3, 8, 8))
    assert net(x, c).shape == (2, 5, 8, 8)


def test_factorized_never_pools_time():
    # T=3 with two levels: fine when factorised (time is never pooled) …
    net = live(tiny(dims=3, factorized=True))
    x, c = inputs((1, 3, 3, 8, 8))
    assert net(x, c).shape == x.shape
    # … but not for full 3-D convolutions, which pool all three axes
    with pytest.raises(BadParameter):
        live(tiny(dims=3))(x, c)
    # H/W must still divide when factorised
    with pytest.raises(BadParameter):
        net(torch.randn(1, 3, 3, 8, 7), c)


def test_a_new_clip_network_paints_every_frame_alone():
    """The temporal convolutions and attention sit behind gains that start at 0: an untrained clip network is its
    spatial network run on each frame (what inflating a picture network relies on)."""
    net = UNet(tiny(dims=3, factorized=True, cond=True)).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "gain" in name and "time" not in name:
                p.fill_(1.0)
    x, c = inputs((2, 3, 5, 8, 8))
    cond = {k: v for k, v in conditions(2).items()}
    y = _run(net, x, c, **cond)
    frames = torch.stack([_run(net, x[:, :, t:t + 1], c, **cond)[:, :, 0] for t in range(5)], 2)
    torch.testing.assert_close(y, frames, atol=1e-5, rtol=1e-5)


def test_temporal_layers_mix_frames_and_a_one_frame_clip_skips_them():
    net = live(tiny(dims=3, factorized=True))  # temporal gains on
    x, c = inputs((1, 3, 4, 8, 8))
    y = _run(net, x, c)
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    assert (_run(net, x2, c)[:, :, 3] - y[:, :, 3]).abs().max() > 1e-3  # frame 0 reaches frame 3
    one = _run(net, x[:, :, :1], c)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".time." in name or "time_attn." in name:
                p.add_(torch.randn_like(p))
    torch.testing.assert_close(_run(net, x[:, :, :1], c), one, rtol=0, atol=0)  # no temporal layer ran


def test_configs_compare_as_networks():
    """A folder written before a setting existed (the key absent) describes the same network as one that spells
    out the default; another value, or a dict that is no config at all, does not."""
    d = tiny(dims=3, factorized=True).to_dict()
    old = {k: v for k, v in d.items() if k != "aug_cond"}
    assert UNetConfig.same(old, d) and UNetConfig.same(d, old)
    assert UNetConfig.same({**d, "channel_mult": tuple(d["channel_mult"])}, d)  # a tuple is the list it was
    assert not UNetConfig.same(old, {**d, "aug_cond": True})
    assert not UNetConfig.same(d, {**d, "no_such_key": 1}) and not UNetConfig.same(d, {"dims": 7})


@pytest.mark.parametrize("shape", [(2, 3, 8), (2, 3, 8, 12), (2, 1, 4, 8, 16)])
def test_fold_is_space_to_depth_and_unfold_its_inverse(shape):
    from noisebrush.nets.unet import _fold, _unfold

    x = torch.randn(shape, generator=gen(0))
    y = _fold(x, 2)
    assert y.shape == (shape[0], shape[1] * 2 ** (len(shape) - 2), *[s // 2 for s in shape[2:]])
    assert torch.equal(_unfold(y, 2), x)
    if len(shape) == 4:
        assert torch.equal(y, torch.nn.functional.pixel_unshuffle(x, 2))  # PyTorch's own, for pictures
    # channel c·p^d + (offsets in the block, row-major) at a position is that cell of the block there
    if len(shape) == 3:
        assert y[1, 2 * 2 + 1, 3] == x[1, 2, 3 * 2 + 1]
    if len(shape) == 5:
        assert y[1, 0 * 8 + (1 * 4 + 0 * 2 + 1), 1, 2, 3] == x[1, 0, 1 * 2 + 1, 2 * 2 + 0, 3 * 2 + 1]


def test_a_patch_network_paints_the_full_size_and_has_its_size_rule():
    cfg = tiny(dims=3, resolution=16, patch=2)
    assert cfg.step == 4 and tiny(dims=3).step == 2
    net = live(cfg)
    x, c = inputs((2, 3, 16, 16, 8))
    assert net(x, c).shape == x.shape
    assert net.enc[0].weight.shape[1] == 3 * 8 + 1 and net.out_conv.weight.shape[0] == 3 * 8
    with pytest.raises(BadParameter, match="divisible by 4"):
        net(torch.randn(1, 3, 16, 16, 6), c[:1])
    for kw, match in ((dict(patch=3), "patch"), (dict(dims=3, factorized=True, patch=2), "factorised")):
        with pytest.raises(BadParameter, match=match):
            tiny(**kw)
    from noisebrush.paint.modality import modality_for

    m = modality_for({"unet": cfg.to_dict(), "resolution": 16})
    assert m.kind == "volume" and m.step == 4
    # the memory estimate walks the folded grid: a patch network holds less than the same network unfolded
    assert 0 < net.activation_bytes((16, 16, 16)) < UNet(tiny(dims=3, resolution=16)).activation_bytes((16, 16, 16))


def test_inflate_checks_both_networks():
    from noisebrush.nets.unet import inflate_image_weights

    picture = UNet(tiny(dims=2))
    clip = UNet(tiny(dims=3, factorized=True, cond_channels=4))
    state = inflate_image_weights(picture.state_dict(), picture.config.to_dict(), clip)
    assert set(state) == set(clip.state_dict())
    assert torch.equal(state["enc.0.weight"][:, 3:7], torch.zeros_like(state["enc.0.weight"][:, 3:7]))
    with pytest.raises(BadParameter, match="not a factorised"):
        inflate_image_weights(picture.state_dict(), picture.config.to_dict(), UNet(tiny(dims=3)))
    with pytest.raises(BadParameter, match="not a picture network"):
        inflate_image_weights(clip.state_dict(), clip.config.to_dict(), clip)
    wide = UNet(tiny(dims=2, channels=16))
    with pytest.raises(BadParameter, match="channels"):
        inflate_image_weights(wide.state_dict(), wide.config.to_dict(), clip)


def test_scalar_and_per_sample_noise_level():
    net = live(tiny())
    x, _ = inputs((3, 3, 8, 8))
    with torch.no_grad():
        a = net(x, 0.7)
        b = net(x, torch.tensor(0.7))
        c = net(x, torch.full((3,), 0.7, dtype=torch.float64))
        d = net(x, torch.tensor([0.7, -1.0, 0.7]))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    torch.testing.assert_close(d[[0, 2]], a[[0, 2]], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(d[1], a[1])  # the noise level matters


# -- initialisation and gradients -----------------------------------------------------------------------------


def test_zero_output_at_init_then_nonzero_after_one_step():
    net = UNet(tiny(cond=True)).train()
    x, c = inputs((2, 3, 8, 8))
    cond = conditions(2)
    y = net(x, c, **cond)
    assert torch.equal(y, torch.zeros_like(y))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    (y - x).square().mean().backward()
    opt.step()
    with torch.no_grad():
        assert net(x, c, **cond).abs().max() > 1e-4


@pytest.mark.parametrize("case", ["1d", "2d", "3d", "3d-factorized"])
def test_gradient_reaches_every_parameter(case):
    kw, shape = SHAPES[case]
    net = gains_to_one(UNet(tiny(cond=True, dropout=0.1, **kw))).train()
    x, c = inputs(shape)
    cond = conditions(shape[0])
    cond["drop"] = torch.tensor([False, True])  # one conditioned, one unconditional sample
    target = torch.randn(shape, generator=gen(5))
    (net(x, c, **cond) - target).square().mean().backward()
    dead = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient for {dead}"
    bad = [name for name, p in net.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradient for {bad}"


# -- conditioning ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnet():
    torch.manual_seed(0)
    return live(tiny(cond=True))


def _run(net, x, c, **cond):
    with torch.no_grad():
        return net(x, c, **cond)


def per_sample_diff(a, b):
    return (a - b).flatten(1).abs().amax(1)


@pytest.mark.parametrize("which", ["labels", "vector", "text"])
def test_each_condition_changes_the_output(cnet, which):
    x, c = inputs((3, 3, 8, 8))
    cond = conditions(3)
    y = _run(cnet, x, c, **cond)
    other = dict(cond)
    if which == "labels":
        other["labels"] = (cond["labels"] + torch.tensor([1, 0, 0])) % LABELS  # only sample 0 changes
    else:
        new = torch.randn(cond[which].shape, generator=gen(9))
        other[which] = torch.cat([new[:1], cond[which][1:]])
    d = per_sample_diff(_run(cnet, x, c, **other), y)
    assert d[0] > 1e-3, f"changing {which} did not change the output"
    assert d[1:].max() < 1e-5, "a neighbour's condition leaked into other samples"


def test_index_labels_equal_one_hot(cnet):
    x, c = inputs((3, 3, 8, 8))
    cond = conditions(3)
    y = _run(cnet, x, c, **cond)
    onehot = dict(cond, labels=torch.nn.functional.one_hot(cond["labels"], LABELS).float())
    torch.testing.assert_close(_run(cnet, x, c, **onehot), y)


def test_drop_ignores_the_conditions_of_dropped_samples_only(cnet):
    x, c = inputs((4, 3, 8, 8))
    cond = conditions(4)
    drop = torch.tensor([True, False, True, False])
    y = _run(cnet, x, c, drop=drop, **cond)
    g = gen(11)
    other = dict(labels=(cond["labels"] + 2) % LABELS, vector=torch.randn(4, VEC, generator=g),
                 text=torch.randn(4, TOK, TXT, generator=g), text_mask=torch.ones(4, TOK, dtype=torch.bool))
    keep = ~drop
    for k in other:  # only the dropped samples get different conditions
        other[k] = torch.where(keep.view(-1, *[1] * (cond[k].ndim - 1)), cond[k], other[k])
    y2 = _run(cnet, x, c, drop=drop, **other)
    assert per_sample_diff(y2, y).max() < 1e-6
    # a neighbour's drop does not touch the others
    y_none = _run(cnet, x, c, **cond)
    y_false = _run(cnet, x, c, drop=torch.zeros(4, dtype=torch.bool), **cond)
    torch.testing.assert_close(y_false, y_none, atol=1e-6, rtol=0)
    d = per_sample_diff(y, y_none)
    assert d[keep].max() < 1e-5
    assert d[drop].min() > 1e-3  # and dropping does change the dropped samples


def test_masked_tokens_do_not_matter(cnet):
    x, c = inputs((3, 3, 8, 8))
    cond = conditions(3)
    mask = cond["text_mask"]
    assert (~mask).any()
    y = _run(cnet, x, c, **cond)
    garbage = 100 * torch.randn(cond["text"].shape, generator=gen(4))
    text2 = torch.where(mask.unsqueeze(-1), cond["text"], garbage)
    torch.testing.assert_close(_run(cnet, x, c, **dict(cond, text=text2)), y, atol=1e-6, rtol=0)
    # no mask = all tokens valid
    full = dict(cond, text_mask=None)
    torch.testing.assert_close(_run(cnet, x, c, **full),
                               _run(cnet, x, c, **dict(cond, text_mask=torch.ones_like(mask))))
    # a fully masked prompt still works (the null token is always attended)
    empty = _run(cnet, x, c, **dict(cond, text_mask=torch.zeros_like(mask)))
    assert torch.isfinite(empty).all()


# -- batch invariance and numerics ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["1d", "2d", "3d-factorized"])
def test_batch_invariance(case):
    kw, shape = SHAPES[case]
    net = live(tiny(cond=True, **kw))
    n = 4
    x, c = inputs((n, *shape[1:]))
    cond = conditions(n)
    cond["drop"] = torch.tensor([False, True, False, False])
    y = _run(net, x, c, **cond)
    for i in range(n):
        yi = _run(net, x[i:i + 1], c[i:i + 1], **{k: v[i:i + 1] for k, v in cond.items()})
        torch.testing.assert_close(yi[0], y[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["2d", "3d"])
def test_channels_last_off_matches_on(case):
    kw, shape = SHAPES[case]
    a = live(tiny(cond=True, channels_last=True, **kw))
    b = UNet(tiny(cond=True, channels_last=False, **kw)).eval()
    b.load_state_dict(a.state_dict())
    x, c = inputs(shape)
    cond = conditions(shape[0])
    torch.testing.assert_close(_run(b, x, c, **cond), _run(a, x, c, **cond), atol=1e-5, rtol=1e-5)


def test_bf16_autocast_close_to_fp32(cnet):
    x, c = inputs((2, 3, 8, 8))
    cond = conditions(2)
    ref = _run(cnet, x, c, **cond)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = cnet(x, c, **cond)
    assert torch.isfinite(y).all()
    rel = ((y.float() - ref).norm() / ref.norm()).item()
    assert rel < 0.05, rel


def test_dropout_train_vs_eval():
    net = gains_to_one(UNet(tiny(dropout=0.5)))
    x, c = inputs((2, 3, 8, 8))
    net.train()
    with torch.no_grad():
        a, b = net(x, c), net(x, c)
    assert (a - b).abs().max() > 1e-3
    net.eval()
    assert torch.equal(_run(net, x, c), _run(net, x, c))


def test_no_dropout_train_matches_eval():
    net = gains_to_one(UNet(tiny()))
    x, c = inputs((2, 3, 8, 8))
    ref = _run(net.eval(), x, c)
    with torch.no_grad():
        y = net.train()(x, c)  # also renormalises the stored weights, which must not change the function
    # (only up to normalize's eps = 1e-4, compounded over ~20 layers)
    assert ((y - ref).norm() / ref.norm()).item() < 1e-4
    assert ((_run(net.eval(), x, c) - ref).norm() / ref.norm()).item() < 1e-4


# -- input validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims, shape", [
    (2, (2, 3, 8)),            # too few axes
    (2, (2, 3, 8, 8, 8)),      # too many axes
    (2, (2, 4, 8, 8)),         # wrong channel count
    (2, (2, 3, 8, 6)),         # 6 is not divisible by 4 (three levels)
    (1, (2, 3, 15)),           # 15 is not divisible by 2
    (1, (2, 1, 16)),
    (3, (2, 3, 4, 8, 5)),
    (3, (2, 3, 3, 8, 8)),      # unfactorised: time is pooled too
    (3, (2, 3, 4, 8)),
])
def test_bad_input_shape(dims, shape):
    net = UNet(tiny(dims=dims, channel_mult=(1, 2, 2) if shape == (2, 3, 8, 6) else (1, 2)))
    with pytest.raises(BadParameter):
        net(torch.zeros(shape), torch.zeros(shape[0]))


def test_bad_noise_level_count():
    net = UNet(tiny())
    with pytest.raises(BadParameter):
        net(torch.zeros(2, 3, 8, 8), torch.zeros(3))


# -- config ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [
    dict(dims=4), dict(dims=0), dict(factorized=True), dict(dims=1, factorized=True), dict(dropout=-0.1),
    dict(dropout=1.0), dict(channel_mult=()), dict(channel_mult=(1, 0)), dict(channels=0), dict(blocks=0),
    dict(in_channels=0), dict(resolution=0), dict(channels_per_head=0), dict(label_dim=-1), dict(text_dim=-2),
    dict(vector_dim=-1),
])
def test_config_validation(kw):
    with pytest.raises(BadParameter):
        UNetConfig(**kw)


def test_config_rejects_negative_out_channels():
    with pytest.raises(BadParameter):
        UNet(UNetConfig(out_channels=-1))


def test_config_rejects_uneven_heads():
    with pytest.raises(BadParameter):  # at config, build or forward time: anything but a bare RuntimeError
        net = UNet(UNetConfig(channels=50, channel_mult=(1,), blocks=1, channels_per_head=16, resolution=8,
                              attn_resolutions=(8,), cross_attn_resolutions=()))
        net(torch.zeros(1, 3, 8, 8), torch.zeros(1))


def test_conditions_the_network_lacks_or_misshapen_are_rejected():
    net = UNet(tiny())
    x = torch.zeros(2, 3, 8, 8)
    with pytest.raises(BadParameter, match="labels"):
        net(x, torch.zeros(2), labels=torch.tensor([0, 1]))
    net = UNet(tiny(label_dim=3, vector_dim=2))
    with pytest.raises(BadParameter, match="vector"):
        net(x, torch.zeros(2), vector=torch.zeros(2, 5))
    with pytest.raises(BadParameter, match="labels"):
        net(x, torch.zeros(2), labels=torch.tensor([0, 1, 2]))
    # check_inputs runs the same shape checks and, unlike forward, the ones that read values
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(BadParameter, match=r"labels: class indices must be in \[0, 3\)"):
            net.check_inputs(x, torch.zeros(2), labels=torch.tensor(bad))
    with pytest.raises(BadParameter, match="vector"):
        net.check_inputs(x, torch.zeros(2), vector=torch.zeros(2, 5))
    with pytest.raises(BadParameter, match="c_noise"):
        net.check_inputs(x, torch.zeros(3))
    net.check_inputs(x, torch.zeros(2), labels=torch.tensor([0, 2]), vector=torch.zeros(2, 2))  # fine


def test_from_dict_rejects_unknown_keys():
    d = UNetConfig().to_dict()
    d["chanels"] = 8
    with pytest.raises(BadParameter, match="chanels"):
        UNetConfig.from_dict(d)


def test_config_dict_round_trip_is_json():
    cfg = tiny(dims=3, cond=True, factorized=True, dropout=0.1, out_channels=2, extra={"note": "run 7", "n": 3})
    d = cfg.to_dict()
    s = json.dumps(d)
    back = UNetConfig.from_dict(json.loads(s))
    assert back == cfg
    assert back.to_dict() == d
    assert isinstance(back.channel_mult, tuple) and isinstance(back.attn_resolutions, tuple)
    assert UNetConfig.from_dict(UNetConfig().to_dict()) == UNetConfig()


def test_kwargs_override_config():
    net = UNet(tiny(), channels=16)
    assert net.config.channels == 16 and net.config.blocks == 1
    assert UNet(dims=1, channels=8, channel_mult=(1,), blocks=1).config.dims == 1


def test_state_dict_round_trip():
    a = live(tiny(cond=True))
    b = UNet(UNetConfig.from_dict(json.loads(json.dumps(a.config.to_dict())))).eval()
    b.load_state_dict(a.state_dict(), strict=True)
    x, c = inputs((2, 3, 8, 8))
    cond = conditions(2)
    assert torch.equal(_run(b, x, c, **cond), _run(a, x, c, **cond))


# -- with EDM preconditioning ---------------------------------------------------------------------------------


def test_edm_precond_per_sample_sigma():
    net = UNet(tiny(cond=True))
    den = EDMPrecond(net, sigma_data=0.5).eval()
    x, _ = inputs((3, 3, 8, 8))
    sigma = torch.tensor([0.02, 1.0, 80.0], dtype=torch.float64)
    cond = conditions(3)
    # out_gain = 0 at init: F = 0, so D(x) = c_skip·x
    y = _run(den, x, sigma, **cond)
    c_skip = (0.25 / (sigma**2 + 0.25)).float().view(-1, 1, 1, 1)
    torch.testing.assert_close(y, c_skip * x)
    gains_to_one(net)
    y = _run(den, x, sigma, **cond)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    for i in range(3):
        yi = _run(den, x[i:i + 1], sigma[i:i + 1], **{k: v[i:i + 1] for k, v in cond.items()})
        torch.testing.assert_close(yi[0], y[i], atol=1e-5, rtol=1e-5)
    # a scalar σ is the same as a vector of equal values
    torch.testing.assert_close(_run(den, x, 1.0, **cond), _run(den, x, torch.ones(3, dtype=torch.float64), **cond))


def test_tiny_unet_fits_a_fixed_batch():
    """EDM-weighted denoising loss on 4 fixed 16×16 images, fixed σ and noise: falls ≥ 5× in 80 Adam steps."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(channels=8, channel_mult=(1, 2), blocks=1, resolution=16, attn_resolutions=(8,),
                          cross_attn_resolutions=()))
    den = EDMPrecond(net, sigma_data=0.5).train()
    g = gen(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    images = []
    for _ in range(4):
        f = torch.rand(3, 1, 1, generator=g) * 3 + 1
        ph = torch.rand(3, 1, 1, generator=g) * 6
        images.append(0.5 * torch.sin(f * xx + ph) * torch.cos(f * yy - ph))
    x0 = torch.stack(images)
    sigma = torch.tensor([0.1, 0.3, 0.8, 2.0], dtype=torch.float64)
    noisy = x0 + sigma.float().view(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g)
    weight = ((sigma**2 + 0.25) / (sigma * 0.5) ** 2).float().view(-1, 1, 1, 1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    losses = []
    for _ in range(80):
        loss = (weight * (den(noisy, sigma) - x0).square()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] / 5, f"loss {losses[0]:.4f} → {losses[-1]:.4f}"


# -- export and baking (issue 11, point 7) --------------------------------------------------------------------


def test_forward_is_exportable():
    """forward never branches on tensor values: torch.export traces it, and the program computes the same."""
    net = live(tiny(cond=True))
    x, c = inputs((2, 3, 8, 8))
    cond = dict(conditions(2), drop=torch.tensor([False, True]))
    program = torch.export.export(net, (x, c), cond, strict=False)
    assert torch.equal(program.module()(x, c, **cond), _run(net, x, c, **cond))
    baked = copy.deepcopy(net).bake()  # export ignores the baked weights (it traces the plain computation)
    _run(baked, x, c, **cond)
    program = torch.export.export(baked, (x, c), cond, strict=False)
    assert torch.equal(program.module()(x, c, **cond), _run(net, x, c, **cond))


@pytest.mark.parametrize("case", ["1d", "2d", "3d", "3d-factorized"])
def test_baked_outputs_are_bit_identical(case):
    kw, shape = SHAPES[case]
    net = live(tiny(cond=True, **kw))
    baked = copy.deepcopy(net).bake()
    x, c = inputs(shape)
    cond = dict(conditions(shape[0]), drop=torch.tensor([False, True]))
    for kwargs in (cond, {"labels": cond["labels"]}, {"text": cond["text"], "text_mask": cond["text_mask"]}, {}):
        ref = _run(net, x, c, **kwargs)
        for _ in range(2):  # the first call bakes, the second reuses
            assert torch.equal(_run(baked, x, c, **kwargs), ref)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(baked(x, c, **cond), net(x, c, **cond))
    if kw["dims"] < 3:  # a bf16 input without autocast (CPU avg_pool3d has no bf16 kernel; no text: attention)
        xb, labels = x.to(torch.bfloat16), cond["labels"]
        assert torch.equal(_run(baked, xb, c, labels=labels), _run(net, xb, c, labels=labels))
    with torch.inference_mode():
        assert torch.equal(baked(x, c, **cond), ref if not cond else net(x, c, **cond))
    # with grad enabled (a guide's gradient through x): the same outputs and the same input gradient
    frozen, plain = copy.deepcopy(baked).requires_grad_(False), copy.deepcopy(net).requires_grad_(False)
    xa, xb2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = frozen(xa, c, **cond), plain(xb2, c, **cond)
    assert torch.equal(ya, yb)
    ya.square().sum().backward()
    yb.square().sum().backward()
    assert torch.equal(xa.grad, xb2.grad)


def test_bake_flags_and_train_unbakes():
    net = live(tiny())
    assert net.bake() is net
    convs = [m for m in net.modules() if isinstance(m, MPConv)]
    assert convs and all(m.baked for m in convs)
    net.eval()
    assert all(m.baked for m in convs)  # eval() keeps the bake …
    net.train()
    assert not any(m.baked for m in convs)  # … train() drops it
    net.eval().bake().unbake()
    assert not any(m.baked for m in convs)


def test_training_after_baking_is_unaffected():
    """Two copies of one network train the same steps; one was baked (and used) first: the same weights after."""
    torch.manual_seed(3)
    a = gains_to_one(UNet(tiny(cond=True)))
    b = copy.deepcopy(a)
    x, c = inputs((2, 3, 8, 8))
    cond = conditions(2)
    _run(b.eval().bake(), x, c, **cond)
    for net in (a, b):
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for step in range(3):
            loss = (net(x, c, **cond) - x).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.project_()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    assert torch.equal(_run(a.eval(), x, c, **cond), _run(b.eval().bake(), x, c, **cond))
    # eval mode with gradients wanted for the weights: the baked weights are not used, gradients arrive
    b.zero_grad()
    b(x, c, **cond).square().mean().backward()
    assert all(p.grad is not None for p in b.parameters())


def test_baked_weights_follow_changes_of_the_stored_weights():
    net = live(tiny(cond=True))
    other = live(tiny(cond=True))
    x, c = inputs((2, 3, 8, 8))
    cond = conditions(2)
    baked = copy.deepcopy(net).bake()
    _run(baked, x, c, **cond)
    baked.load_state_dict(other.state_dict())  # load_state_dict re-bakes
    assert torch.equal(_run(baked, x, c, **cond), _run(other, x, c, **cond))
    with torch.no_grad():  # in-place changes of weights and gains are seen
        for p, q in zip(baked.parameters(), net.parameters()):
            p.copy_(q)
    assert torch.equal(_run(baked, x, c, **cond), _run(net, x, c, **cond))
    with torch.no_grad():
        baked.out_gain.mul_(2)
        net.out_gain.mul_(2)
    assert torch.equal(_run(baked, x, c, **cond), _run(net, x, c, **cond))
    for m, n in zip(baked.modules(), net.modules()):  # a replaced .data is seen too
        if isinstance(m, MPConv):
            m.weight.data = m.weight.data * 2
            n.weight.data = n.weight.data * 2
    assert torch.equal(_run(baked, x, c, **cond), _run(net, x, c, **cond))
    baked.bfloat16()  # .to() / .half() / … re-bake
    net.bfloat16()
    xb, labels = x.to(torch.bfloat16), cond["labels"]
    assert torch.equal(_run(baked, xb, c, labels=labels), _run(net, xb, c, labels=labels))


# -- memory estimate (issue 12 point 2) ------------------------------------------------------------------------------
def test_activation_bytes_scales_with_pixels_batch_and_dtype():
    net = UNet(tiny(resolution=16))
    one = net.activation_bytes((32, 32), 1)
    assert one > 0
    assert net.activation_bytes((32, 32), 3) == pytest.approx(3 * one, rel=0.01)
    assert net.activation_bytes((64, 64), 1) == pytest.approx(4 * one, rel=0.05)
    assert net.activation_bytes((32, 32), 1, torch.bfloat16) == pytest.approx(one / 2, rel=0.01)
    with pytest.raises(BadParameter, match="^size: 2 whole numbers"):
        net.activation_bytes((32,), 1)


def test_activation_bytes_counts_attention_scores_only_when_they_are_materialised():
    """Fused attention kernels (CPU, CUDA) work in tiles; a plain softmax(q·kᵀ)·v holds heads × tokens² scores."""
    net = UNet(tiny(resolution=16, channels_per_head=8))  # self-attention at level 1 (8 px of 16): 2 heads
    fused = net.activation_bytes((256, 256), 1)
    plain = net.activation_bytes((256, 256), 1, attention_scores=True)
    tokens = 128 * 128
    assert plain - fused >= 2 * 2 * tokens * tokens * 4  # two score matrices (scores and softmax) of two heads
    assert fused < 2 * tokens * tokens  # what the fused kernels spare


def test_activation_bytes_covers_every_layout():
    for cfg in (tiny(dims=1, resolution=16), tiny(dims=3, resolution=8), tiny(dims=3, resolution=8, factorized=True),
                tiny(cond=True, resolution=16)):
        net = UNet(cfg)
        size = (16,) * cfg.dims
        assert net.activation_bytes(size, 2, text_tokens=TOK) > 2 * 4 * 3 * 16 ** cfg.dims


def test_registry_estimate_asks_the_network():
    from noisebrush.nets import registry

    net = UNet(tiny())
    assert registry.activation_bytes(net, (16, 16), 2) == net.activation_bytes((16, 16), 2)
    assert registry.activation_bytes(torch.nn.Linear(2, 2), (16, 16), 2) is None


# -- a conditioning picture (low) and its augmentation level (aug): super-resolution stages -----------------------


def sr_tiny(**kw) -> UNetConfig:
    base = dict(in_channels=3, channels=8, channel_mult=(1, 2), blocks=1, resolution=16, attn_resolutions=(),
                cross_attn_resolutions=(), cond_channels=3, aug_cond=True)
    base.update(kw)
    return UNetConfig(**base)


@pytest.fixture(scope="module")
def srnet():
    torch.manual_seed(0)
    return live(sr_tiny())


def sr_inputs(n=3, size=16, seed=0):
    g = gen(seed)
    return (torch.randn(n, 3, size, size, generator=g), torch.randn(n, generator=g),
            torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.rand(n, generator=g) * 0.5)


def test_sr_forward_with_low_and_aug(srnet):
    x, c, low, aug = sr_inputs()
    y = _run(srnet, x, c, low=low, aug=aug)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() > 0
    # another picture size: the network is convolutional
    x2, c2, low2, aug2 = sr_inputs(2, 32)
    assert _run(srnet, x2, c2, low=low2, aug=aug2).shape == (2, 3, 32, 32)
    # a scalar aug is every sample's
    y1 = _run(srnet, x, c, low=low, aug=0.25)
    torch.testing.assert_close(y1, _run(srnet, x, c, low=low, aug=torch.full((3,), 0.25)), atol=1e-6, rtol=0)
    # no aug means level 0
    assert torch.equal(_run(srnet, x, c, low=low), _run(srnet, x, c, low=low, aug=torch.zeros(3)))
    srnet.check_inputs(x, c, low=low, aug=aug)  # fine


def test_sr_output_depends_on_low_and_aug_per_sample(srnet):
    x, c, low, aug = sr_inputs()
    y = _run(srnet, x, c, low=low, aug=aug)
    low2 = low.clone()
    low2[1] = -low2[1]
    d = per_sample_diff(_run(srnet, x, c, low=low2, aug=aug), y)
    assert d[1] > 1e-3 and d[0] == 0 and d[2] == 0
    aug2 = aug.clone()
    aug2[2] = aug2[2] + 1.0
    d = per_sample_diff(_run(srnet, x, c, low=low, aug=aug2), y)
    assert d[2] > 1e-3 and d[0] == 0 and d[1] == 0


def test_sr_output_at_init_is_zero_until_the_gains_are_set():
    """out_gain 0 at init: output 0. With out_gain 1 the output follows low; aug acts through the embedding, which
    modulates the blocks only once their emb_gain is switched on too (every gain 1: live())."""
    net = UNet(sr_tiny()).eval()
    x, c, low, aug = sr_inputs()
    assert torch.equal(_run(net, x, c, low=low, aug=aug), torch.zeros_like(x))
    with torch.no_grad():
        net.out_gain.fill_(1.0)
    y = _run(net, x, c, low=low, aug=aug)
    assert y.abs().max() > 0
    low2 = torch.flip(low, dims=(-1,))
    assert (y - _run(net, x, c, low=low2, aug=aug)).abs().max() > 1e-4
    assert torch.equal(y, _run(net, x, c, low=low, aug=aug + 1.0))  # emb_gain 0: no modulation yet
    gains_to_one(net)
    y = _run(net, x, c, low=low, aug=aug)
    assert (y - _run(net, x, c, low=low, aug=aug + 1.0)).abs().max() > 1e-4
    assert (y - _run(net, x, c, low=low2, aug=aug)).abs().max() > 1e-4


def test_sr_gradient_reaches_the_aug_embedding_and_the_low_channels():
    net = live(sr_tiny()).train()
    x, c, low, aug = sr_inputs()
    low.requires_grad_(True)
    net(x, c, low=low, aug=aug).square().mean().backward()
    assert low.grad is not None and low.grad.abs().max() > 0
    for name, p in net.named_parameters():
        if name.startswith("emb_aug"):
            assert p.grad is not None and p.grad.abs().max() > 0, name


def test_sr_missing_or_misshapen_low_is_rejected(srnet):
    x, c, low, aug = sr_inputs()
    with pytest.raises(BadParameter, match="low"):
        srnet(x, c, aug=aug)
    for bad in (low[:2], low[:, :2], low[..., :8, :8], low[0], torch.zeros(3, 3, 16, 8)):
        with pytest.raises(BadParameter, match="low"):
            srnet(x, c, low=bad, aug=aug)
        with pytest.raises(BadParameter, match="low"):
            srnet.check_inputs(x, c, low=bad, aug=aug)
    with pytest.raises(BadParameter, match="aug"):
        srnet(x, c, low=low, aug=torch.zeros(2))


def test_low_and_aug_are_rejected_by_a_network_without_them():
    x, c, low, aug = sr_inputs()
    plain = UNet(sr_tiny(cond_channels=0, aug_cond=False))
    with pytest.raises(BadParameter, match="low"):
        plain(x, c, low=low)
    with pytest.raises(BadParameter, match="aug"):
        plain(x, c, aug=aug)
    with pytest.raises(BadParameter, match="aug"):
        plain.check_inputs(x, c, aug=aug)
    low_only = UNet(sr_tiny(aug_cond=False))
    low_only(x, c, low=low)  # fine
    with pytest.raises(BadParameter, match="aug"):
        low_only(x, c, low=low, aug=aug)
    aug_only = UNet(sr_tiny(cond_channels=0))
    aug_only(x, c, aug=aug)  # fine
    with pytest.raises(BadParameter, match="low"):
        aug_only(x, c, low=low, aug=aug)


def test_sr_config_fields_round_trip_and_are_checked():
    cfg = sr_tiny()
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["cond_channels"] == 3 and d["aug_cond"] is True
    assert UNetConfig.from_dict(d) == cfg
    with pytest.raises(BadParameter, match="cond_channels"):
        sr_tiny(cond_channels=-1)
    a = live(sr_tiny())
    b = UNet(sr_tiny()).eval()
    b.load_state_dict(a.state_dict())
    x, c, low, aug = sr_inputs()
    assert torch.equal(_run(a, x, c, low=low, aug=aug), _run(b, x, c, low=low, aug=aug))
    assert any(k.startswith("emb_aug") for k in a.state_dict())
    assert not any(k.startswith("emb_aug") for k in UNet(sr_tiny(aug_cond=False)).state_dict())


def test_sr_batch_invariance(srnet):
    """Sample i's output does not depend on the other samples (their low or aug). The tolerance is the float32
    reassociation of CPU convolutions over batch sizes, which the plain network shows too (up to ~1e-5)."""
    n = 4
    x, c, low, _ = sr_inputs(n)
    aug = torch.tensor([0.0, 1.5, 0.05, 0.7])  # far apart: a mix-up of samples' levels shows
    y = _run(srnet, x, c, low=low, aug=aug)
    for i in range(n):
        yi = _run(srnet, x[i:i + 1], c[i:i + 1], low=low[i:i + 1], aug=aug[i:i + 1])
        torch.testing.assert_close(yi[0], y[i], atol=1e-5, rtol=1e-5)
        # the same sample next to others with another low and aug
        others = _run(srnet, x[[i, (i + 1) % n]], c[[i, (i + 1) % n]], low=torch.stack([low[i], -low[i]]),
                      aug=torch.stack([aug[i], aug[i] + 0.3]))
        torch.testing.assert_close(others[0], y[i], atol=1e-5, rtol=1e-5)


def test_activation_bytes_counts_the_conditioning_channels():
    plain = UNet(sr_tiny(cond_channels=0, aug_cond=False))
    cond = UNet(sr_tiny())
    wide = UNet(sr_tiny(cond_channels=48))
    for size in ((16, 16), (64, 48)):
        a, b, w = (net.activation_bytes(size, 2) for net in (plain, cond, wide))
        # three more input channels do not move this tiny net's peak (a later level-0 block), 48 do
        assert a <= b < w, (size, a, b, w)
        # the input alone: N × (3 + cond) channels in float32
        assert b > 2 * (3 + 3) * size[0] * size[1] * 4


# -- a generator's latent (diffusion GANs) ----------------------------------------------------------------------------

def _generator(**kw):
    torch.manual_seed(0)
    return UNet(UNetConfig(channels=8, channel_mult=(1, 2), blocks=1, attn_resolutions=(), cross_attn_resolutions=(),
                           label_dim=3, latent_dim=4, **kw))


def test_a_generator_takes_a_latent_that_starts_with_no_effect_and_then_modulates_every_block():
    net = _generator()
    x, c, y = torch.randn(2, 3, 8, 8), torch.zeros(2), torch.tensor([0, 1])
    z1, z2 = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.equal(net(x, c, labels=y, z=z1), net(x, c, labels=y, z=z2))  # gain 0: the denoiser it is built from
    with torch.no_grad():  # as after some training: every gain (they start at 0) opened
        for name, p in net.named_parameters():
            if name.endswith("gain"):
                p.fill_(1.0)
    assert not torch.allclose(net(x, c, labels=y, z=z1), net(x, c, labels=y, z=z2))
    # the latent's length does not matter (it is normalised), its direction does
    assert torch.allclose(net(x, c, labels=y, z=z1), net(x, c, labels=y, z=3 * z1), atol=1e-3)


def test_a_generator_checks_its_latent():
    net = _generator()
    x, c = torch.randn(2, 3, 8, 8), torch.zeros(2)
    with pytest.raises(BadParameter, match=r"z: this network is a generator and needs a latent of shape \(2, 4\), got none"):
        net(x, c)
    with pytest.raises(BadParameter, match=r"got \(2, 5\)"):
        net(x, c, z=torch.randn(2, 5))
    plain = UNet(UNetConfig(channels=8, channel_mult=(1, 2), blocks=1, attn_resolutions=(), cross_attn_resolutions=()))
    with pytest.raises(BadParameter, match="z: this network was built without a latent input"):
        plain(x, c, z=torch.randn(2, 4))
    with pytest.raises(BadParameter, match="latent_dim"):
        UNetConfig(latent_dim=-1)
    assert "emb_latent.weight" in net.state_dict() and "emb_latent.weight" not in plain.state_dict()

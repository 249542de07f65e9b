"""The GANs' discriminator: shapes, conditions (noise level, text by projection, labels, drop), the minibatch
standard deviation's groups, its config's checks and the registry."""
import pytest
import torch

from noisebrush.errors import BadParameter, UserError
from noisebrush.nets import registry
from noisebrush.nets.disc import DiscConfig, Discriminator, _minibatch_std

SMALL = dict(channels=8, channel_mult=[1, 2, 2], resolution=16)


def _net(**kw):
    torch.manual_seed(0)
    return Discriminator(DiscConfig(**{**SMALL, **kw})).eval()


def test_one_logit_per_sample_that_reads_the_noise_level():
    d = _net(in_channels=6)
    x = torch.randn(4, 6, 16, 16)
    out = d(x, torch.full((4,), 0.5))
    assert out.shape == (4,) and torch.isfinite(out).all()
    assert not torch.allclose(out, d(x, torch.full((4,), -1.0)))
    assert d(x, torch.tensor(0.5)).shape == (4,)  # one level for the batch
    plain = _net(in_channels=3, time_cond=False)
    assert plain(torch.randn(2, 3, 16, 16)).shape == (2,)
    with pytest.raises(BadParameter, match="c_noise"):
        d(x)


def test_text_enters_as_a_projection_and_drop_removes_it():
    d = _net(in_channels=3, text_dim=5, mbstd_group=0)
    x = torch.randn(2, 3, 16, 16)
    tok, mask = torch.randn(2, 4, 5), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    a = d(x, 0.1, text=tok, text_mask=mask)
    assert not torch.allclose(a, d(x, 0.1, text=torch.randn(2, 4, 5), text_mask=mask))
    # masked tokens do not count; a dropped condition is the same as none
    changed = tok.clone()
    changed[0, 2:] = 9.0
    assert torch.allclose(a, d(x, 0.1, text=changed, text_mask=mask))
    dropped = d(x, 0.1, text=tok, text_mask=mask, drop=torch.tensor([True, False]))
    assert torch.allclose(dropped[0], d(x, 0.1)[0]) and torch.allclose(dropped[1], a[1])
    with pytest.raises(BadParameter, match="text"):
        _net(in_channels=3)(x, 0.1, text=tok)


def test_labels_enter_as_a_projection():
    d = _net(in_channels=3, label_dim=4, mbstd_group=0)
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(d(x, 0.0, labels=torch.tensor([0, 1])), d(x, 0.0, labels=torch.tensor([2, 3])))


def test_minibatch_std_groups():
    h = torch.randn(8, 3, 2, 2)
    s = _minibatch_std(h, 4)
    assert s.shape == (8, 1, 2, 2)
    # group j holds samples 4j … 4j + 3: a batch split in two halves makes the same groups
    want = torch.stack([h[:4].var(0, unbiased=False).add(1e-8).sqrt().mean(), h[4:].var(0, unbiased=False)
                        .add(1e-8).sqrt().mean()])
    assert torch.allclose(s[:, 0, 0, 0], want.repeat_interleave(4))
    assert torch.allclose(torch.cat([_minibatch_std(h[:4], 4), _minibatch_std(h[4:], 4)]), s)
    assert _minibatch_std(h[:6], 4).shape == (6, 1, 2, 2)  # 6 samples: groups of 2
    assert torch.allclose(_minibatch_std(h[:1], 4), torch.full((1, 1, 2, 2), 1e-4))  # one sample: no spread


def test_every_sample_of_a_group_moves_when_one_member_does():
    d = _net(in_channels=3, time_cond=False)
    x = torch.randn(4, 3, 16, 16)
    y = x.clone()
    y[0] += 1.0
    a, b = d(x), d(y)
    assert not torch.allclose(a[1:], b[1:])  # the others see the group's spread change


@pytest.mark.parametrize("kw, match", [
    (dict(channels=0), "channels"), (dict(channel_mult=[]), "channel_mult"), (dict(text_dim=-1), "text_dim"),
    (dict(resolution=10), "divisible by 4"), (dict(in_channels=True), "in_channels"),
])
def test_config_is_checked(kw, match):
    with pytest.raises(BadParameter, match=match):
        DiscConfig(**{**SMALL, **kw})
    with pytest.raises(BadParameter, match="unknown discriminator config keys: wings"):
        DiscConfig.from_dict({"wings": 2})


def test_input_shape_is_checked():
    with pytest.raises(BadParameter, match="N×6×H×W"):
        _net(in_channels=6)(torch.randn(1, 3, 16, 16), 0.0)


def test_registered_and_built_from_a_description():
    net = registry.build({"network": "disc", "disc": {**SMALL, "in_channels": 3}})
    assert isinstance(net, Discriminator) and net.config.in_channels == 3
    assert DiscConfig.from_dict(net.config.to_dict()) == net.config
    with pytest.raises(UserError, match="bad network description"):
        registry.build({"network": "disc", "disc": {"channels": -2}})

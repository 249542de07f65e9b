"""Network names → classes: which network a model folder's config.json describes, and building it.

A model folder's config.json names its network (``"network": "unet"``) and keeps the network's description under
that same name (``"unet": {"channels": 64, ...}``). Folders written before networks had names hold a UNet.

    from noisebrush.nets import registry

    net = registry.build(config, source=path / "config.json")   # an nn.Module with fresh (untrained) weights
    registry.register("sr-unet", SRUNet, SRUNetConfig)           # a new network joins by registering

A config class is built with its ``from_dict(description)`` classmethod when it has one, else with
``config_class(**description)``; the network with ``net_class(config)``. Bad values are reported as one UserError
line naming the file.

:func:`activation_bytes` asks a network how much activation memory a forward pass at a given size takes (the
network's own ``activation_bytes`` method, as :class:`noisebrush.nets.unet.UNet` has; ``None`` for a network
without one), so painting can refuse a size that does not fit before allocating anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from noisebrush.errors import BadParameter, UserError
from noisebrush.io import model_folder
from noisebrush.io.model_folder import network_name
from noisebrush.nets.disc import DiscConfig, Discriminator
from noisebrush.nets.unet import UNet, UNetConfig, inflate_image_weights

__all__ = ["Network", "register", "unregister", "names", "get", "build", "activation_bytes", "load_weights",
           "base_weights"]


@dataclass(frozen=True)
class Network:
    """A registered network: its name in config.json, its class and its config class."""
    name: str
    net_class: type
    config_class: type

    def make_config(self, description: dict):
        """The config object for ``description`` (the dict under the network's name in config.json)."""
        if hasattr(self.config_class, "from_dict"):
            return self.config_class.from_dict(description)
        return self.config_class(**description)


_NETWORKS: dict[str, Network] = {}


def register(name: str, net_class: type, config_class: type, *, replace: bool = False) -> Network:
    """Make ``name`` (as written in config.json's ``"network"``) build ``net_class(config_class...)``.

    Registering a name twice is an error unless ``replace`` (a test swapping in a stand-in, say)."""
    if not isinstance(name, str) or not name:
        raise BadParameter(f"name: a network name, got {name!r}")
    if name in _NETWORKS and not replace:
        raise BadParameter(f"name: a network {name!r} is registered already ({_NETWORKS[name].net_class.__name__})")
    entry = Network(name, net_class, config_class)
    _NETWORKS[name] = entry
    return entry


def unregister(name: str) -> None:
    """Forget ``name`` (for tests that register a network of their own)."""
    _NETWORKS.pop(name, None)


def names() -> list[str]:
    """The registered network names, sorted."""
    return sorted(_NETWORKS)


def get(name: str, *, source="config.json") -> Network:
    """The registered network called ``name``; an unknown name is one UserError line naming ``source``."""
    if not isinstance(name, str) or name not in _NETWORKS:
        raise UserError(f"{source}: unknown network {name!r}; this noisebrush knows {', '.join(names())}")
    return _NETWORKS[name]


def build(config: dict, *, source=None) -> torch.nn.Module:
    """The network that ``config`` (a model folder's config.json, as a dict) describes, with fresh weights.

    ``source``: the config.json path named in errors (default: just "config.json")."""
    where = Path(source) if source is not None else "config.json"
    name = network_name(config)  # "unet" for folders written before networks had names
    entry = get(name, source=where)
    description = config.get(name)
    if not isinstance(description, dict):
        if name not in config:
            raise UserError(f"{where}: missing {name!r}")
        raise UserError(f"{where}: bad network description ({name!r} must be a table of settings)")
    try:
        return entry.net_class(entry.make_config(description))
    except (BadParameter, TypeError) as e:
        raise UserError(f"{where}: bad network description ({e})") from None


def activation_bytes(net: torch.nn.Module, size, batch: int = 1, dtype: torch.dtype = torch.float32,
                     **options) -> int | None:
    """Peak activation bytes of one forward pass of ``net`` (no gradients) at spatial ``size`` for ``batch``
    inputs, from the network's own ``activation_bytes`` (``options`` go to it); None when it has none."""
    estimate = getattr(net, "activation_bytes", None)
    return None if estimate is None else int(estimate(size, batch, dtype, **options))


def load_weights(path, config: dict, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights of the model folder ``path`` (its config.json as ``config``) for ``net``: model.safetensors,
    completed by its base when config.json names one (``"base": {"model": NAME, "hash": SHA}``): a folder that
    holds only what differs from another model (the built-in animation model keeps the built-in picture model's
    spatial weights exactly and ships its own layers alone). A picture base under a clip network is inflated
    (:func:`noisebrush.nets.unet.inflate_image_weights`)."""
    path = Path(path)
    state = model_folder.read_weights(path)
    base = config.get("base")
    if base is None:
        return state
    where = path / "config.json"
    if not isinstance(base, dict) or not isinstance(base.get("model"), str) or not base["model"]:
        raise UserError(f"{where}: base must name a model folder ({{\"model\": NAME, \"hash\": …}}), got {base!r:.60}")
    return {**base_weights(base["model"], net, expect_hash=base.get("hash"), where=where), **state}


def base_weights(model, net: torch.nn.Module, *, expect_hash: str | None = None, where="base") \
        -> dict[str, torch.Tensor]:
    """The weights of the model folder ``model`` as ``net`` takes them (float32): as stored when the networks
    match, inflated when ``model`` is a picture network and ``net`` a factorised clip network. ``expect_hash``: the
    weights hash a folder built on it recorded (a changed base is one UserError line)."""
    path = model_folder.resolve(model)
    if expect_hash and model_folder.weights_hash(path) != expect_hash:
        raise UserError(f"{where}: is built on {model} weights {expect_hash}, but {path} has "
                        f"{model_folder.weights_hash(path)}")
    conf = model_folder.read_config(path)
    if conf.get("base") is not None:
        raise UserError(f"{where}: its base {model} is itself built on another model; one level is supported")
    state = {k: v.to(torch.float32) for k, v in model_folder.read_weights(path).items()}
    description = model_folder.network_description(conf)
    own = getattr(net, "config", None)
    if isinstance(own, UNetConfig) and own.factorized and int(description.get("dims", 2)) == 2:
        try:
            return inflate_image_weights(state, description, net)
        except BadParameter as e:
            raise UserError(f"{where}: {e}") from None
    return state


register("unet", UNet, UNetConfig)
register("disc", Discriminator, DiscConfig)  # the GANs' discriminator (noisebrush.train.gan); never exported

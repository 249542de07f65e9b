"""The video objective: text → clip, picture → clip, interpolation and extension from one space-time network.

    noisebrush train --task video --config configs/video.toml --out ~/noisebrush-runs/video

:class:`VideoObjective` is :class:`~noisebrush.train.objectives.EDMObjective` (the same EDM loss, loop, checkpoints,
exact resume and N processes) on a factorised space-time UNet (``dims = 3, factorized = true``: spatial 1×3×3
convolutions and per-frame attention, residual temporal 3×1×1 convolutions and temporal attention behind gains that
start at 0; time is never pooled) over :class:`~noisebrush.data.clips.ProceduralClips`, whose captions say how
things move. Three ideas from the literature, at a size two CPU cores can train:

* **Joint picture and clip batches** (Ho et al. 2022, "Video Diffusion Models"): the first ``joint_images``
  samples of every step are ProceduralArt pictures, run as 1-frame clips, for which the network skips its temporal
  layers. The pictures keep the frames as varied and as sharp as the picture model's.
* **Frame masking** (Voleti et al. 2022, "MCVD"): each clip is trained with some of its frames *given* — none
  (text → clip), the first (picture → clip), the first and the last (interpolation) or the first 2..T/2
  (extension), in the shares ``frame_masks`` — as extra input channels: the given frames (zeros elsewhere) and a
  0/1 mask channel (:func:`noisebrush.data.clips.frame_condition`). The loss counts the other frames only. At
  sampling the given frames are put back into every denoised estimate, so they come out exactly as given. One
  network does all four jobs; extension continues a clip by giving its last frames (masking, not reconstruction
  guidance: guidance needs a gradient through the network at every step, about 3× the work on a CPU, and masking is
  what the network was trained for).
* **Correlated noise across frames** (``frame_noise`` = ρ; Ge et al. 2023, "PYoCo"): a clip's noise shares a part
  between its frames (:func:`noisebrush.diffusion.noise.correlate_frames`), in training and at sampling. A picture
  model run on every frame then already paints nearly the same picture in each, and training has only the motion
  left to learn — with independent noise it must first learn to agree on one scene.
* **Starting from the picture model** (``init = "builtin"``): :func:`noisebrush.nets.unet.inflate_image_weights`
  copies a picture network's weights into the spatial layers, so the untrained clip network already paints every
  frame as the picture model does and training learns the motion (Make-A-Video's and VDM's initialisation).

Every draw is a function of (seed, global sample k): which clip or picture, σ, noise and dropout from the sample
stream (pictures from a second stream with its own tag), the frame mask from ``condition_generator(k)``.
"""
from __future__ import annotations

import torch

from noisebrush.data.clips import ProceduralClips, frame_condition
from noisebrush.data.captions import phrase
from noisebrush.data.procedural import ProceduralArt
from noisebrush.diffusion import EDMPrecond, karras
from noisebrush.diffusion.losses import edm_loss
from noisebrush.diffusion.noise import SampleNoise, correlate_frames
from noisebrush.diffusion.sample import make_denoiser, sample, start
from noisebrush.errors import UserError
from noisebrush.nets.text import TextEncoder
from noisebrush.nets.unet import UNetConfig, inflate_image_weights
from noisebrush.train.objectives import EDMObjective, Loss, read_init
from noisebrush.train.stream import SampleStream

__all__ = ["VideoObjective", "MASKS", "draw_given"]

MASKS = ("none", "first", "ends", "prefix")  # the frame-mask kinds, in the order of TrainConfig.frame_masks
_IMAGE_TAG = 0x1A6E     # the pictures' sample stream
_PICTURES = 60_000      # ProceduralArt items the joint pictures come from (the picture model's data set)


def draw_given(shares, frames: int, g: torch.Generator) -> torch.Tensor:
    """A bool (frames,) of the frames a training clip is given: its kind drawn with ``shares`` (see :data:`MASKS`)
    and, for a prefix, its length 2..max(2, frames // 2), both from ``g``."""
    u = float(torch.rand((), generator=g, dtype=torch.float64))
    kind, acc = MASKS[-1], 0.0
    for name, share in zip(MASKS, shares):
        acc += share
        if u < acc:
            kind = name
            break
    given = torch.zeros(frames, dtype=torch.bool)
    if frames < 2 or kind == "none":
        return given
    if kind == "first":
        given[0] = True
    elif kind == "ends":
        given[0] = given[-1] = True
    else:
        hi = max(2, frames // 2)
        n = 2 + int(torch.randint(0, hi - 1, (), generator=g))
        given[:min(n, frames - 1)] = True
    return given


class VideoObjective(EDMObjective):
    """EDM on clips with frame masking and joint pictures (see the module docstring). ``dataset``: the clips
    (default: ProceduralClips of the config); ``images``: the joint pictures (default: ProceduralArt)."""

    preview_cols = 0  # previews: one clip per row (set from the frames in build)

    def __init__(self, *, dataset=None, images=None, text_encoder=None):
        super().__init__(dataset=dataset, text_encoder=text_encoder)
        self.images = images

    # -- set-up ----------------------------------------------------------------------------------------------------
    def _prepare_data(self) -> None:
        cfg = self.cfg
        if self.dataset is None:
            self.dataset = ProceduralClips(resolution=cfg.resolution, frames=cfg.frames, size=cfg.data_size, seed=0)
        if self.images is None and cfg.joint_images:
            self.images = ProceduralArt(resolution=cfg.resolution, size=_PICTURES, seed=0)
        self.condition = "text"
        self.family = False  # clips train on their one caption; pictures on phrasings when captions = "family"
        self.picture_family = cfg.captions == "family"
        self.sr = None
        self.preview_cols = cfg.frames
        self._clips: dict[int, torch.Tensor] = {}     # uint8 clips by index (deterministic renders)
        self._pictures: dict[int, torch.Tensor] = {}  # uint8 pictures by index
        self.stream = SampleStream(len(self.dataset), cfg.seed, P_mean=cfg.P_mean, P_std=cfg.P_std,
                                   cond_drop=cfg.cond_drop)
        n_pictures = len(self.images) if self.images is not None else 1
        self.image_stream = SampleStream(n_pictures, cfg.seed, tag=_IMAGE_TAG, P_mean=cfg.P_mean, P_std=cfg.P_std,
                                         cond_drop=cfg.cond_drop)

    def _network_config(self) -> UNetConfig:
        cfg = self.cfg
        channels = int(cfg.model.get("in_channels", 3))
        return UNetConfig.from_dict({"resolution": cfg.resolution, **cfg.model, **self._cond_dims(), "dims": 3,
                                     "factorized": True, "cond_channels": channels + 1})

    def _cond_dims(self) -> dict:
        if self.text is None:
            self.text = TextEncoder(max_tokens=self.cfg.max_tokens)
        return {"text_dim": self.text.dim, "label_dim": 0}

    def init_weights(self, source: str) -> None:
        """A clip model or checkpoint of this network, or a picture model (``builtin``) inflated into it."""
        net_config, state, ema, updates = read_init(source, self.net)
        if net_config is not None and int(net_config.get("dims", 2)) == 2:
            try:
                state = inflate_image_weights(state, net_config, self.net)
                ema = inflate_image_weights(ema, net_config, self.net)
            except Exception as e:  # BadParameter: the picture network does not match this config
                raise UserError(f"init: {source}: {e}") from None
            updates = 0
        elif not UNetConfig.same(net_config or {}, self.net_config.to_dict()):
            raise UserError(f"init: {source} holds another network than this config describes (check [model], "
                            f"resolution and frames)")
        self._load(source, state, ema, updates)

    def describe(self) -> dict:
        return self.net_config.to_dict()

    def unused_parameters(self, cfg) -> bool:
        # a picture is a 1-frame clip that skips the temporal layers: a process whose micro-batch holds only
        # pictures (configs/video.toml on two processes: 6 pictures of 12) gives them no gradient
        return cfg.joint_images > 0

    def run_info(self) -> dict:
        return {"network": self.net_config.to_dict(), "condition": "text", "task": "video"}

    # -- data ------------------------------------------------------------------------------------------------------
    def _clip(self, index: int) -> torch.Tensor:
        u8 = self._clips.get(index)
        if u8 is None:
            u8 = self._clips[index] = self.dataset.clip_uint8(index)
        return u8.float().div_(127.5).sub_(1.0)

    def _picture(self, index: int) -> torch.Tensor:
        u8 = self._pictures.get(index)
        if u8 is None:
            x = self.images[index]["image"]
            u8 = self._pictures[index] = (x + 1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
        return u8.float().div_(127.5).sub_(1.0).unsqueeze(1)  # 3×1×H×W: a 1-frame clip

    def batch(self, ks) -> dict:
        """The micro-batch of global samples ``ks``: its clips and its pictures (the first ``joint_images`` of each
        step's global batch), each with σ, noise, dropout, captions and the frame condition."""
        cfg = self.cfg
        groups = {"clips": [], "pictures": []}
        for k in ks:
            groups["pictures" if k % cfg.batch_size < cfg.joint_images else "clips"].append(k)
        return {name: self._group(name, group) for name, group in groups.items() if group}

    def _group(self, name: str, ks: list[int]) -> dict:
        xs, sigmas, noises, drops, captions, givens = [], [], [], [], [], []
        for k in ks:
            if name == "clips":
                index, _ = self.stream.item(k)
                x0 = self._clip(index)
                sigma, noise, drop = self.stream.draws(k, x0.shape)
                noise = correlate_frames(noise, self.cfg.frame_noise)  # a function of the stream's draw
                given = draw_given(self.cfg.frame_masks, x0.shape[1], self.stream.condition_generator(k))
                caption = self.dataset.caption(index)
            else:
                index, _ = self.image_stream.item(k)
                x0 = self._picture(index)
                sigma, noise, drop = self.image_stream.draws(k, x0.shape)
                given = torch.zeros(1, dtype=torch.bool)
                caption = phrase(self.images.scene(index), self.image_stream.caption_rng(k)) \
                    if self.picture_family else self.images.caption(index)
            xs.append(x0), sigmas.append(sigma), noises.append(noise), drops.append(drop)
            captions.append(caption), givens.append(given)
        dev = self.loop.acc.device
        x0 = torch.stack(xs)
        given = torch.stack(givens)
        tok, mask = self._encode(ks, captions)
        return {"x0": x0.to(dev), "sigma": torch.tensor(sigmas, dtype=torch.float64, device=dev),
                "noise": torch.stack(noises).to(dev), "captions": captions, "given": given.to(dev),
                "cond": {"text": tok.to(dev), "text_mask": mask.to(dev), "drop": torch.tensor(drops, device=dev),
                         "low": frame_condition(x0, given).to(dev)}}

    def _encode(self, ks, captions: list[str]):
        # clip captions number in the tens of thousands: encoded as they come, without growing the memory cache
        tok, mask = self.text.encode_uncached(captions)
        if self.cfg.text_noise:
            noise = torch.stack([self.stream.token_noise(k, tok.shape[1:]) for k in ks])
            tok = tok + self.cfg.text_noise * noise * mask.unsqueeze(-1)
        return tok, mask

    # -- the loss --------------------------------------------------------------------------------------------------
    def loss(self, batch: dict, micro: int, accum: int) -> Loss:
        """EDM's loss over the frames that are not given (every frame of a picture), per sample; pictures and clips
        count alike."""
        pers, sigmas = [], []
        for group in batch.values():
            counted = (~group["given"]).to(torch.float32)[:, None, :, None, None]
            with self.loop.autocast():
                per = edm_loss(self.den, group["x0"], sigma=group["sigma"], noise=group["noise"],
                               sigma_data=self.cfg.sigma_data, mask=counted, **group["cond"])
            pers.append(per.float()), sigmas.append(group["sigma"])
        per = torch.cat(pers)
        loss = per.mean() / accum
        if self.cfg.l1:
            loss = loss + self.cfg.l1 * sum(p.abs().sum() for p in self._l1_params) / accum
        return Loss(loss, per.detach(), torch.cat(sigmas))

    # -- previews and the exported model -----------------------------------------------------------------------------
    def preview_conditions(self, n: int = 4) -> dict:
        caps = [self.dataset.caption(i % len(self.dataset)) for i in range(n)]
        tok, mask = self.text.encode(caps)
        return {"text": tok, "text_mask": mask}

    @torch.no_grad()
    def sample(self, n: int = 4, steps: int | None = None, seeds=None) -> torch.Tensor:
        """``n`` clips (text → clip, no guidance) from the EMA network, as their frames one clip after the other
        ((n·T)×C×H×W; the previews show one clip per row)."""
        cfg, dev = self.cfg, self.loop.acc.device
        n = min(n, 4)
        den = EDMPrecond(self.loop.parts["model"].ema.model, sigma_data=cfg.sigma_data)
        seeds = list(range(n)) if seeds is None else list(seeds)
        noise = SampleNoise.from_seeds(seeds)
        shape = (self.net_config.in_channels, cfg.frames, cfg.resolution, cfg.resolution)
        sigmas = karras(steps or cfg.sample_steps, sigma_min=0.002, sigma_max=80.0)
        cond = {k: v.to(dev) for k, v in self.preview_conditions(len(seeds)).items()}
        cond["low"] = torch.zeros(len(seeds), shape[0] + 1, *shape[1:], device=dev)
        x = correlate_frames(start(noise, shape, sigmas), cfg.frame_noise).to(dev)
        clips = sample(make_denoiser(den, cond), x, sigmas.to(dev), noise, sampler=cfg.sampler).clamp(-1, 1).cpu()
        return clips.transpose(1, 2).reshape(-1, shape[0], cfg.resolution, cfg.resolution)

    def model_config(self) -> dict:
        conf = super().model_config()
        return {**conf, "frames": self.cfg.frames, "task": "video",
                "video": {"given_frames": "channels", "frame_masks": list(self.cfg.frame_masks),
                          "frame_noise": self.cfg.frame_noise}}


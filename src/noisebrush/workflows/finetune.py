"""Fine-tuning a model on the user's own pictures: the whole network, or LoRA adapters (peft) in a small file.

    from noisebrush.workflows.finetune import finetune

    report = finetune("builtin", "my-pictures/", "outputs/mystyle", token="<mystyle>")            # a model folder
    report = finetune("builtin", "my-pictures/", "mystyle.safetensors", lora=True, rank=8,
                      token="<mystyle>", prior_preservation=True)                                  # a LoRA file

    noisebrush paint "<mystyle> three concentric rings" --model outputs/mystyle
    noisebrush paint "<mystyle> three concentric rings" --lora mystyle.safetensors:0.8

**Captions.** A picture's caption is its sidecar ``NAME.txt`` (as for ``noisebrush train``). With ``token=T`` it
becomes ``"T CAPTION"``, or ``"a picture in T style"`` for a picture without one. The token goes *first* because the
text encoder keeps 16 word pieces: a token at the end of a long caption would be cut off. Without a token the
captions are used as they are (a picture without one trains with the empty caption).

**Prior preservation** (Ruiz et al. 2023, "DreamBooth", eq. 2). Before training, the base model paints M class
pictures (default 2 per picture, 8 to 100) from the class prompts: ``class_prompt``, or else each picture's own
caption *without* the token (``"a picture"`` when it has none). Every step then trains on a batch of the user's
pictures and an equally large batch of class pictures, loss = L_data + λ·L_prior (``prior_weight``): the model
learns the new token while being held to what it painted before for the words it already knew. When the base model
was trained on the built-in set and no ``class_prompt`` is given, every other class picture is painted from a
caption of that set instead (a broad prior): DreamBooth's class prior only holds the class (here: the kind of
picture in the folder) in place, and with shared weights the rest of what the base could paint drifts too.

**Training** runs on the trainer's loop (:class:`noisebrush.train.loop.Loop`, with :class:`FinetuneObjective`):
the EDM loss of the base model's own σ distribution, AdamW, a cosine learning-rate schedule with a short warm-up,
gradient clipping at norm 1, the non-finite guard, an EMA of the weights (what gets saved), bf16 autocast where the
hardware runs it fast, all through Accelerate. Every random draw is a function of (seed, sample): the pictures and
the class pictures each have a sample stream (:class:`noisebrush.train.stream.SampleStream`, tagged 0xDA and 0x9A):
sample k is item ``perm_e[k mod N]`` of epoch e's permutation, its σ, noise and condition-dropout flag come from its
own generator. Full fine-tuning trains every weight and re-projects the MPConv weights after each step (forced
weight normalisation); LoRA trains only the adapters (see :mod:`noisebrush.nets.lora`) and writes them alone.

**Ctrl-C** (a KeyboardInterrupt during training; the command line turns Ctrl-C into one at the end of a step)
keeps the work: what was trained so far is written to ``out`` as usual, its provenance saying ``"steps"``: the steps
done, ``"steps_planned"`` and ``"interrupted": true``, and :class:`Interrupted` (a KeyboardInterrupt) is raised with
the step, the planned steps and ``out``. Interrupted before training, nothing is written; during the memorization
check, the result is already written. ``out`` is checked for writability before any work
(:func:`noisebrush.io.atomic.check_writable`); a place that fails at the end keeps the work in the rescue folder.

**At the end** the saved result is loaded the way a user would load it (``noisebrush.load(out)``, or the base with
the LoRA merged), paints ``memorization_n`` pictures from the training captions, and the memorization check of
:func:`noisebrush.eval.metrics.memorization` compares them with the training pictures (the share of near-copies).
The report also holds the loss on the user's pictures at fixed noise before and after, and the CPU seconds of the
run (``time.process_time``: all threads of this process).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from accelerate import Accelerator
import torch

from noisebrush import __version__
from noisebrush.checks import limited, number, whole
from noisebrush.data.folder import ImageFolder
from noisebrush.data.procedural import ProceduralArt
from noisebrush.devices import cpu_bf16_fast, cpu_features, hardware_name, has_accelerator, pick_device
from noisebrush.diffusion import EDMPrecond
from noisebrush.diffusion.losses import edm_loss
from noisebrush.errors import BadParameter, UserError
from noisebrush.eval.metrics import memorization
from noisebrush.eval.sampling import sample_many
from noisebrush.io import model_folder
from noisebrush.io.atomic import check_writable
from noisebrush.nets.lora import DEFAULT_TARGETS, adapter_tensors, add_lora, apply_loras, save_lora
from noisebrush.paint.pipeline import load
from noisebrush.seeding import generator, mix
from noisebrush.train.ema import EMA
from noisebrush.train.loop import Loop
from noisebrush.train.lr import make_scheduler
from noisebrush.train.objectives import Loss, Objective, Part, Phase
from noisebrush.train.stream import SampleStream
from noisebrush.workflows.finetune_defaults import DEFAULTS

__all__ = ["finetune", "caption_with_token", "DEFAULTS", "default_out", "FinetuneObjective", "Interrupted"]

log = logging.getLogger("noisebrush.workflows.finetune")

EVAL_SIGMAS = (0.05, 0.2, 0.5, 1.0, 2.0)  # noise levels of the before/after loss on the user's pictures
DATA_TAG, PRIOR_TAG = 0xDA, 0x9A  # the sample streams of the pictures and of the class pictures


class Interrupted(KeyboardInterrupt):
    """Fine-tuning stopped by Ctrl-C: ``step`` of ``steps`` were done; ``out`` holds their result (None: nothing
    was written, it stopped before training); ``stage``: "training", "class pictures" or "memorization"."""

    def __init__(self, step: int, steps: int, out: Path | None, mode: str, stage: str = "training"):
        super().__init__(f"interrupted at step {step} of {steps}")
        self.step, self.steps, self.out, self.mode, self.stage = step, steps, out, mode, stage


def caption_with_token(caption: str, token: str | None) -> str:
    """The training caption of a picture: see the module docstring."""
    caption = (caption or "").strip()
    if not token:
        return caption
    return f"{token} {caption}" if caption else f"a picture in {token} style"


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:40].rstrip("-") or "pictures"


def default_out(data, lora: bool, root: Path = Path("outputs/finetune")) -> Path:
    """``outputs/finetune/NAME`` (a model folder) or ``NAME-lora.safetensors``, with -2, -3 … when taken."""
    name = _slug(Path(data).resolve().name)
    suffix = "-lora.safetensors" if lora else ""
    path = root / f"{name}{suffix}"
    k = 2
    while path.exists():
        path = root / f"{name}-{k}{suffix}"
        k += 1
    return path


def _check_out(out, lora: bool) -> Path:
    out = Path(out)
    if lora:
        if out.suffix != ".safetensors":
            raise BadParameter(f"--out: a LoRA is one file; name it NAME.safetensors (got {out})")
        if out.exists():
            raise UserError(f"{out}: exists; choose another --out (a LoRA file is never overwritten)")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists; choose another --out (a new model folder is written there)")
    check_writable(out, what="--out", folder=not lora)  # before any work, not after the training
    return out


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- the options -------------------------------------------------------------------------------------------------------

@dataclass
class _Options:
    """finetune()'s options, checked and with the defaults filled in."""
    mode: str
    lora: bool
    rank: int
    alpha: float | None
    lora_targets: object
    token: str | None
    prior_preservation: bool
    class_prompt: object
    prior_weight: float
    prior_images: int | None
    steps: int
    lr: float
    batch_size: int
    seed: int
    ema_decay: float
    cond_drop: float
    flip: bool
    precision: str
    memorization_n: int
    sample_steps: int
    cfg: float


def _check_options(data, *, lora, rank, alpha, lora_targets, token, prior_preservation, class_prompt, prior_weight,
                   prior_images, steps, lr, batch_size, seed, ema_decay, cond_drop, flip, precision, memorization_n,
                   sample_steps, cfg) -> _Options:
    """Every option checked before any work (one BadParameter line naming the option), in the order of old."""
    mode = "lora" if lora else "full"
    if data is None or str(data).strip() == "":
        raise BadParameter("--data: the folder of pictures to fine-tune on")
    steps = limited("--steps", DEFAULTS[mode]["steps"] if steps is None else steps, "finetune_steps")
    lr = number("--lr", DEFAULTS[mode]["lr"] if lr is None else lr, 0.0, above=True)
    batch_size = limited("--batch-size", batch_size, "batch_size")
    seed = whole("--seed", seed, 0)
    if lora:
        rank = whole("--rank", rank, 1, 1024)
        alpha = number("--alpha", rank if alpha is None else alpha, 0, above=True)
    ema_decay = number("ema_decay", ema_decay, 0.0, 1.0, below=True)
    cond_drop = number("cond_drop", cond_drop, 0.0, 1.0, below=True)
    cfg = number("cfg", cfg, 0.0)
    memorization_n = whole("memorization_n", memorization_n, 0)
    sample_steps = whole("sample_steps", sample_steps, 1)
    if precision not in ("auto", "bf16", "no"):
        raise BadParameter(f"precision: auto, bf16 or no; got {precision!r}")
    if token is not None:
        if not isinstance(token, str) or not token.strip() or "\n" in token:
            raise BadParameter(f"--token: a word (e.g. '<mystyle>') on one line, got {token!r}")
        token = token.strip()
    if not prior_preservation:
        given = [f for f, v in (("--class-prompt", class_prompt), ("--prior-weight", prior_weight),
                                ("prior_images", prior_images)) if v is not None]
        if given:
            raise BadParameter(f"{given[0]}: only with --prior-preservation")
    prior_weight = number("--prior-weight", 1.0 if prior_weight is None else prior_weight, 0.0)
    if prior_images is not None:
        prior_images = whole("prior_images", prior_images, 1, 100_000)
    if class_prompt is not None:
        listed = [class_prompt] if isinstance(class_prompt, str) else class_prompt
        if not isinstance(listed, (list, tuple)) or not listed or \
                not all(isinstance(c, str) and "\n" not in c for c in listed):
            raise BadParameter(f"--class-prompt: one line of text, got {class_prompt!r}")
    return _Options(mode=mode, lora=bool(lora), rank=rank, alpha=alpha, lora_targets=lora_targets, token=token,
                    prior_preservation=bool(prior_preservation), class_prompt=class_prompt,
                    prior_weight=prior_weight, prior_images=prior_images, steps=steps, lr=lr,
                    batch_size=batch_size, seed=seed, ema_decay=ema_decay, cond_drop=cond_drop, flip=bool(flip),
                    precision=precision, memorization_n=memorization_n, sample_steps=sample_steps, cfg=cfg)


# -- the pictures ------------------------------------------------------------------------------------------------------

@dataclass
class _Pictures:
    """The base model and the user's pictures as training sees them."""
    pipe: object            # the base model (noisebrush.paint.pipeline.Pipeline)
    ds: object              # the ImageFolder
    captions: list          # training captions (with the token)
    images: object          # N×C×H×W, epoch 0 (no flip): the pictures as they are
    tok: object             # (tokens, mask) of the captions, or None for an unconditional model
    P_mean: float
    P_std: float
    sigma_data: float

    @property
    def n(self) -> int:
        return len(self.captions)

    def encode(self, prompts):
        """(tokens, mask) of ``prompts`` for a text-conditioned base, else None."""
        if self.pipe.condition != "text":
            return None
        return self.pipe.text_encoder.encode(list(prompts))


def _load_pictures(base, data, opts: _Options, dev) -> _Pictures:


    pipe = load(base, device=dev)
    if pipe.is_gan:  # fine-tuning is denoising; a GAN's generator learns against its discriminator
        raise UserError(f"{base}: a {pipe.method} model; fine-tuning trains diffusion models — train it further "
                        f"on your pictures with `noisebrush train --method {pipe.method} --data DIR --set "
                        f"init={base}`")
    if pipe.condition == "label":
        raise UserError(f"{base}: a class-label model; fine-tuning supports text-conditioned and unconditional "
                        f"models")
    if pipe.dims != 2 or pipe.channels != 3:
        raise UserError(f"{base}: fine-tuning on pictures needs a model of 2-D RGB pictures")
    if pipe.condition != "text" and (opts.token is not None or opts.class_prompt is not None):
        raise BadParameter(f"--{'token' if opts.token is not None else 'class-prompt'}: {base} is not "
                           f"text-conditioned")
    ds = ImageFolder(data, resolution=pipe.resolution, crop="center", flip=opts.flip, seed=opts.seed)
    captions = [caption_with_token(c, opts.token) for c in ds.captions]
    prov_cfg = (pipe.config.get("provenance") or {}).get("config") or {}
    pics = _Pictures(pipe=pipe, ds=ds, captions=captions,
                     images=torch.stack([ds.get(i, 0)["image"] for i in range(len(ds))]), tok=None,
                     P_mean=float(prov_cfg.get("P_mean", -1.2)), P_std=float(prov_cfg.get("P_std", 1.2)),
                     sigma_data=float(pipe.config["sigma_data"]))
    pics.tok = pics.encode(captions)
    if pipe.condition == "text" and not any(captions):
        log.warning("%s: no captions and no token: the model learns these pictures for the empty prompt", data)
    return pics


def _class_pictures(pics: _Pictures, opts: _Options, say) -> dict:
    """Prior preservation: the base model paints the class pictures (see the module docstring)."""

    pipe, seed, class_prompt = pics.pipe, opts.seed, opts.class_prompt
    m = opts.prior_images or max(8, min(100, 2 * pics.n))
    prompts = None
    if pipe.condition == "text":
        if class_prompt is None:
            per_item = [c.strip() or "a picture" for c in pics.ds.captions]
        else:
            per_item = [class_prompt] if isinstance(class_prompt, str) else list(class_prompt)
        prompts = [per_item[i % len(per_item)] for i in range(m)]
        if class_prompt is None and _trained_on_builtin(pipe.config):
            # a broad prior: every other class picture paints a caption of the base's own training set
            art = ProceduralArt(resolution=pipe.resolution, size=m, seed=mix(seed, 0xBA5E) % (1 << 31))
            prompts = [prompts[i // 2] if i % 2 == 0 else art.caption(i) for i in range(m)]
    say("class pictures", 0, m, "")
    painted, _ = sample_many(pipe, m, prompts=prompts, seed=mix(seed, 0xC1A55) % (1 << 31), batch=32,
                             steps=opts.sample_steps, cfg=opts.cfg,
                             progress=lambda d, t: say("class pictures", d, t, ""))
    return {"images": painted.float().cpu(), "captions": prompts, "tok": pics.encode(prompts) if prompts else None}


def _trained_on_builtin(config: dict) -> bool:
    """Whether a model was trained on the built-in set (directly, or fine-tuned from one that was)."""
    prov = config.get("provenance") or {}
    if prov.get("data") == "builtin":
        return True
    return (prov.get("base_provenance") or {}).get("data") == "builtin" and prov.get("base") == "builtin"


# -- the objective -----------------------------------------------------------------------------------------------------

class FinetuneObjective(Objective):
    """Fine-tuning as an objective of the trainer's loop (:class:`noisebrush.train.objectives.Objective`): a copy
    of the base network (with LoRA adapters when ``opts.lora``), AdamW, a cosine schedule, EMA; each step's batch
    is B of the user's pictures and, with prior preservation, B class pictures; loss = mean L_data + λ·mean
    L_prior (DreamBooth, eq. 2)."""

    def __init__(self, pics: _Pictures, prior: dict | None, opts: _Options):
        self.pics, self.prior, self.opts = pics, prior, opts
        self.den = None

    def build(self, loop) -> dict:


        o, pics = self.opts, self.pics
        self.device, self.autocast = loop.acc.device, loop.autocast
        net = copy.deepcopy(pics.pipe.net).float()
        if o.lora:

            add_lora(net, o.rank, o.alpha, targets=o.lora_targets or DEFAULT_TARGETS, seed=o.seed)
        else:
            net.requires_grad_(True)
        net.train()
        params = [p for p in net.parameters() if p.requires_grad]
        self.n_trained = sum(p.numel() for p in params)
        ema = EMA(net, o.ema_decay)
        opt = torch.optim.AdamW(params, lr=o.lr, betas=(0.9, 0.99), weight_decay=0.0)
        sched = make_scheduler(opt, "cosine", o.steps, warmup=min(20, o.steps // 10), final=0.1)
        self.data_stream = SampleStream(pics.n, o.seed, tag=DATA_TAG, P_mean=pics.P_mean, P_std=pics.P_std,
                                        cond_drop=o.cond_drop)
        self.prior_stream = None if self.prior is None else SampleStream(
            self.prior["images"].shape[0], o.seed, tag=PRIOR_TAG, P_mean=pics.P_mean, P_std=pics.P_std,
            cond_drop=o.cond_drop)
        return {"model": Part(net, opt, sched, ema, grad_clip=1.0, project=not o.lora)}

    def prepared(self, loop) -> None:

        self.den = EDMPrecond(loop.parts["model"].module, sigma_data=self.pics.sigma_data)

    def describe(self) -> dict:
        return dict(self.pics.pipe.config["unet"])

    def phases(self, step: int) -> list:

        return [Phase("model", self.batch, self.loss)]

    def batch(self, ks) -> dict:
        """The user's pictures (and the class pictures) of the global samples ``ks``, with σ, noise, conditions."""

        pics, o = self.pics, self.opts
        shape = tuple(pics.images.shape[1:])
        xs, sig, noi, idx, drops = [], [], [], [], []
        for k in ks:
            i, epoch, s, z, d = self.data_stream.draw(k, shape)
            xs.append(pics.ds.get(i, epoch)["image"] if o.flip else pics.images[i])
            sig.append(s), noi.append(z), idx.append(i), drops.append(d)
        cond = _conditions(pics.tok, idx, drops)
        weights = [1.0 / len(ks)] * len(ks)
        if self.prior is not None:
            pidx, pdrops = [], []
            for k in ks:
                i, _, s, z, d = self.prior_stream.draw(k, shape)
                xs.append(self.prior["images"][i])
                sig.append(s), noi.append(z), pidx.append(i), pdrops.append(d)
            prior_cond = _conditions(self.prior["tok"], pidx, pdrops)
            cond = {k: torch.cat([cond[k], prior_cond[k]]) for k in cond} if cond else {}
            weights += [o.prior_weight / len(ks)] * len(ks)
        dv = self.device
        return {"x0": torch.stack(xs).to(dv), "sigma": torch.tensor(sig, dtype=torch.float64, device=dv),
                "noise": torch.stack(noi).to(dv), "cond": {k: v.to(dv) for k, v in cond.items()},
                "weights": torch.tensor(weights, device=dv), "n_data": len(ks)}

    def loss(self, batch: dict, micro: int, accum: int):
        """Σ weight·λ(σ)‖D − x_0‖² (EDM's loss per sample, Karras et al. 2022 eq. 2); the log shows the pictures'."""

        with self.autocast():
            per = edm_loss(self.den, batch["x0"], sigma=batch["sigma"], noise=batch["noise"],
                           sigma_data=self.pics.sigma_data, **batch["cond"])
        value = (per.float() * batch["weights"]).sum() / accum
        return Loss(value, per.detach(), logged=per[:batch["n_data"]].detach().float())


def _conditions(tok, idx, drops) -> dict:
    """Text conditions of items ``idx`` of (tokens, mask), with their dropout flags; {} without tokens."""

    if tok is None:
        return {}
    t, mask = tok
    idx = torch.as_tensor(idx)
    return {"text": t[idx], "text_mask": mask[idx], "drop": torch.as_tensor(drops, dtype=torch.bool)}


# -- training ----------------------------------------------------------------------------------------------------------

def _precision(asked: str, dev) -> str:
    """``auto`` → bf16 where the hardware runs it fast (and the device is a CPU or a CUDA GPU), else no."""

    if asked != "auto":
        return asked
    return "bf16" if (has_accelerator() or cpu_bf16_fast()) and dev.type in ("cpu", "cuda") else "no"


def _eval_loss(module, pics: _Pictures, seed: int, autocast, device) -> float:
    """Mean EDM loss over the user's pictures at the fixed σ levels, with fixed noise (no condition dropout)."""


    pre = EDMPrecond(module, sigma_data=pics.sigma_data)
    was = module.training
    module.eval()
    rows = [(i, s) for i in range(pics.n) for s in range(len(EVAL_SIGMAS))]
    total = 0.0
    with torch.no_grad():
        for c in range(0, len(rows), 64):
            chunk = rows[c:c + 64]
            idx = [i for i, _ in chunk]
            sig = torch.tensor([EVAL_SIGMAS[s] for _, s in chunk], dtype=torch.float64)
            noise = torch.stack([torch.randn(pics.images.shape[1:], generator=generator(seed, i, s, 0xE7A1))
                                 for i, s in chunk])
            cond = {k: v.to(device) for k, v in _conditions(pics.tok, idx, [False] * len(idx)).items()}
            with autocast():
                per = edm_loss(pre, pics.images[idx].to(device), sigma=sig.to(device), noise=noise.to(device),
                               sigma_data=pics.sigma_data, **cond)
            total += float(per.float().sum())
    module.train(was)
    return total / len(rows)


def _train(pics: _Pictures, prior: dict | None, opts: _Options, dev, say) -> dict:
    """Fine-tune on the trainer's loop; returns the objective, the loop and what the report needs of the run."""


    mp = _precision(opts.precision, dev)
    acc = Accelerator(cpu=dev.type == "cpu")  # mixed precision by explicit autocast: Accelerate's state is a
    #                                           process-wide singleton whose precision cannot change once set

    def autocast():
        if mp == "bf16":
            return torch.autocast(acc.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    objective = FinetuneObjective(pics, prior, opts)
    loop = Loop(objective, acc, batch_size=opts.batch_size, autocast=autocast)
    part = loop.parts["model"]
    loss_before = _eval_loss(part.module, pics, opts.seed, autocast, acc.device)
    losses = []
    t_train, c_train = time.perf_counter(), time.process_time()
    interrupted = False
    try:
        say("training", 0, opts.steps, "")
        for step in range(opts.steps):
            res = loop.train_step()
            losses.append(res.loss)
            say("training", step + 1, opts.steps, f"loss {res.loss:.4f}")
    except KeyboardInterrupt:  # keep what was trained: the caller writes it (the steps done) and says so
        interrupted = True
    train_wall, train_cpu = time.perf_counter() - t_train, time.process_time() - c_train
    loss_after = None if interrupted else _eval_loss(part.ema.model, pics, opts.seed, autocast, acc.device)
    return {"objective": objective, "loop": loop, "ema": part.ema, "precision": mp, "device": acc.device,
            "loss_before": loss_before, "loss_after": loss_after, "steps_done": loop.step,
            "interrupted": interrupted, "losses": losses, "train_wall": train_wall, "train_cpu": train_cpu}


# -- the result --------------------------------------------------------------------------------------------------------

def _provenance(pics: _Pictures, prior, opts: _Options, run: dict, data, command) -> dict:

    pipe, cp = pics.pipe, opts.class_prompt
    return {
        "noisebrush": __version__, "command": command or "python API", "kind": f"finetune ({opts.mode})",
        "base": pipe.name, "base_hash": pipe.hash, "data": str(Path(data).resolve()), "pictures": pics.n,
        "token": opts.token, "steps": run["steps_done"], "batch_size": opts.batch_size, "lr": opts.lr, "seed": opts.seed,
        "ema_decay": opts.ema_decay, "cond_drop": opts.cond_drop, "prior_preservation": None if prior is None else
        {"pictures": int(prior["images"].shape[0]), "weight": opts.prior_weight,
         "class_prompt": cp if isinstance(cp, (str, type(None))) else list(cp)[:3]},
        "precision": run["precision"], "hardware": hardware_name(run["device"]), "cpu": cpu_features(),
        "train_seconds": round(run["train_wall"], 1), "train_cpu_seconds": round(run["train_cpu"], 1),
        "skipped": run["loop"].skipped,
        **({"interrupted": True, "steps_planned": opts.steps} if run["interrupted"] else {}),
    }


def _write_result(out: Path, pics: _Pictures, opts: _Options, provenance: dict, ema) -> None:
    """A LoRA file (the adapters of the EMA network) or a model folder like the trainer's export."""
    pipe = pics.pipe
    if opts.lora:

        provenance.update(rank=opts.rank, alpha=opts.alpha)
        save_lora(out, adapter_tensors(ema.model), rank=opts.rank, alpha=opts.alpha, unet_config=pipe.config["unet"],
                  base_name=pipe.name, base_hash=pipe.hash, token=opts.token, provenance=provenance)
    else:
        _write_model(out, ema.model, pipe.config, provenance, pipe.path)
    log.info("fine-tuned %s on %d pictures (%s, %d steps) → %s", pipe.name, pics.n, opts.mode,
             provenance["steps"], out)


def _write_model(out: Path, net, base_config: dict, provenance: dict, base_path: Path) -> None:
    """A model folder through :func:`noisebrush.io.model_folder.write`: the EMA weights in the base's dtype, and the
    base's config.json with this run's provenance."""

    dtype = model_folder.weights_dtype(base_path)  # the built-in model ships float16
    provenance = {**provenance, "weights_dtype": str(dtype).replace("torch.", "")}
    conf = {k: v for k, v in base_config.items() if k != "provenance"}
    base_prov = base_config.get("provenance") or {}
    conf["provenance"] = {**provenance, "data": provenance["data"], "init": provenance["base"],
                          "images_seen": provenance["steps"] * provenance["batch_size"],
                          "base_provenance": {k: base_prov.get(k) for k in ("command", "data", "steps",
                                                                            "train_seconds", "hardware")
                                              if k in base_prov}}
    model_folder.write(out, net.state_dict(), conf, dtype=dtype, what="the fine-tuned model")


def _memorization(out: Path, pics: _Pictures, opts: _Options, dev, say) -> dict | None:
    """Load what was written as a user would, paint from the training captions, measure near-copies."""
    if not opts.memorization_n or pics.n < 2:
        return None


    if opts.lora:

        after = pics.pipe  # its network is the untouched base (training worked on a copy)
        apply_loras(after.net, after.config, after.hash, [(Path(out), 1.0)])
    else:
        after = load(out, device=dev)
    n, k = pics.n, opts.memorization_n
    prompts = [pics.captions[i % n] for i in range(k)] if pics.pipe.condition == "text" else None
    say("memorization", 0, k, "")
    gen, _ = sample_many(after, k, prompts=prompts, seed=mix(opts.seed, 0x3E30) % (1 << 31), batch=32,
                         steps=opts.sample_steps, cfg=opts.cfg, progress=lambda d, t: say("memorization", d, t, ""))
    m = memorization(gen, pics.images, size=min(16, pics.pipe.resolution))
    ratios = torch.tensor(m["ratios"])
    return {"near_copy_fraction": m["near_copy_fraction"], "threshold": m["threshold"],
            "nearest_ratio_median": float(ratios.median()), "pictures_painted": k,
            "training_pictures": m["training_pictures"], "prompts": sorted(set(prompts or []))[:3]}


def _report(out: Path, data, pics: _Pictures, opts: _Options, run: dict, provenance: dict, memo, t_wall: float,
            t_cpu: float) -> dict:

    losses, k = run["losses"], max(1, opts.steps // 10)
    return {
        "mode": opts.mode, "out": str(out), "bytes": _bytes(Path(out)), "base": pics.pipe.name,
        "base_hash": pics.pipe.hash, "data": str(data), "pictures": pics.n, "token": opts.token,
        "caption_example": pics.captions[0], "steps": opts.steps, "batch_size": opts.batch_size, "lr": opts.lr,
        "rank": opts.rank if opts.lora else None, "alpha": opts.alpha if opts.lora else None,
        "params_trained": run["objective"].n_trained, "prior_preservation": provenance["prior_preservation"],
        "precision": run["precision"], "device": str(run["device"]),
        "loss_before": run["loss_before"], "loss_after": run["loss_after"],
        "train_loss_first": sum(losses[:k]) / len(losses[:k]), "train_loss_last": sum(losses[-k:]) / len(losses[-k:]),
        "skipped": run["loop"].skipped, "train_seconds": run["train_wall"], "train_cpu_seconds": run["train_cpu"],
        "cpu_seconds": time.process_time() - t_cpu, "wall_seconds": time.perf_counter() - t_wall,
        "threads": torch.get_num_threads(), "memorization": memo,
    }


def finetune(base="builtin", data=None, out=None, *, lora: bool = False, rank: int = 8, alpha: float | None = None,
             lora_targets=None, token: str | None = None, prior_preservation: bool = False,
             class_prompt: str | list[str] | None = None, prior_weight: float | None = None,
             prior_images: int | None = None, steps: int | None = None, lr: float | None = None,
             batch_size: int = 8, seed: int = 0, ema_decay: float = 0.999, cond_drop: float = 0.1,
             flip: bool = False, precision: str = "auto", device=None, memorization_n: int = 16,
             sample_steps: int = 20, cfg: float = 3.0, progress=None, command: str | None = None) -> dict:
    """Fine-tune ``base`` on the pictures in ``data`` and write ``out``; returns a report (see the module doc).

    ``progress(stage, done, total, info)`` is called with stage "class pictures", "training" or "memorization".
    ``class_prompt`` may also be a list of prompts (the class pictures cycle through it); ``lora_targets``: which
    modules get adapters (a peft ``target_modules`` pattern; default :data:`noisebrush.nets.lora.DEFAULT_TARGETS`).
    """

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    opts = _check_options(data, lora=lora, rank=rank, alpha=alpha, lora_targets=lora_targets, token=token,
                          prior_preservation=prior_preservation, class_prompt=class_prompt,
                          prior_weight=prior_weight, prior_images=prior_images, steps=steps, lr=lr,
                          batch_size=batch_size, seed=seed, ema_decay=ema_decay, cond_drop=cond_drop, flip=flip,
                          precision=precision, memorization_n=memorization_n, sample_steps=sample_steps, cfg=cfg)
    dev = pick_device(device)
    out = _check_out(default_out(data, lora) if out is None else out, lora)
    say = progress or (lambda *a: None)
    pics = _load_pictures(base, data, opts, dev)
    try:
        prior = _class_pictures(pics, opts, say) if opts.prior_preservation else None
    except KeyboardInterrupt:
        raise Interrupted(0, opts.steps, None, opts.mode, "class pictures") from None
    run = _train(pics, prior, opts, dev, say)
    if run["interrupted"] and run["steps_done"] == 0:  # nothing trained: nothing to keep
        raise Interrupted(0, opts.steps, None, opts.mode)
    provenance = _provenance(pics, prior, opts, run, data, command)
    _write_result(out, pics, opts, provenance, run["ema"])
    if run["interrupted"]:
        raise Interrupted(run["steps_done"], opts.steps, out, opts.mode)
    try:
        memo = _memorization(out, pics, opts, dev, say)
    except KeyboardInterrupt:
        raise Interrupted(opts.steps, opts.steps, out, opts.mode, "memorization") from None
    return _report(out, data, pics, opts, run, provenance, memo, t_wall, t_cpu)

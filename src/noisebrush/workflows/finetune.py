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

**Training.** The EDM loss of the base model's own σ distribution, AdamW, a cosine learning-rate schedule with a
short warm-up, gradient clipping at norm 1, an EMA of the weights (what gets saved), bf16 autocast where the
hardware runs it fast, all through Accelerate — as :mod:`noisebrush.train.loop` does. Every random draw is a
function of (seed, sample): sample k of the data stream is item ``perm_e[k mod N]`` of epoch e's permutation, its σ,
noise and condition-dropout flag come from its own generator. Full fine-tuning trains every weight and re-projects
the MPConv weights after each step (forced weight normalisation); LoRA trains only the adapters (see
:mod:`noisebrush.nets.lora`) and writes them alone.

**At the end** the saved result is loaded the way a user would load it (``noisebrush.load(out)``, or the base with
the LoRA merged), paints ``memorization_n`` pictures from the training captions, and the memorization check of
:func:`noisebrush.eval.metrics.memorization` compares them with the training pictures (the share of near-copies).
The report also holds the loss on the user's pictures at fixed noise before and after, and the CPU seconds of the
run (``time.process_time``: all threads of this process).
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import re
import time
from pathlib import Path

from noisebrush.errors import BadParameter, UserError

__all__ = ["finetune", "caption_with_token", "DEFAULTS", "default_out"]

log = logging.getLogger("noisebrush.workflows.finetune")

# steps and learning rate per mode when not given: a few CPU minutes on the built-in model for ~20 pictures.
# Full fine-tuning moves unit-RMS weights (lr ≈ relative change per Adam step); LoRA's B starts at 0 and needs
# bigger steps to matter. Chosen with `python -m noisebrush.bench finetune` (see its docstring).
DEFAULTS = {"full": {"steps": 250, "lr": 2.5e-3}, "lora": {"steps": 250, "lr": 1.5e-2}}
EVAL_SIGMAS = (0.05, 0.2, 0.5, 1.0, 2.0)  # noise levels of the before/after loss on the user's pictures


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


def _whole(name: str, v, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f"from {lo} to {hi}" if hi is not None else f"≥ {lo}"
        raise BadParameter(f"{name}: a whole number {rng}, got {v!r}")
    return v


def _number(name: str, v, lo: float | None = None, *, above: bool = False, below: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BadParameter(f"{name}: a finite number, got {v!r}")
    v = float(v)
    if lo is not None and (v < lo or (above and v == lo)):
        raise BadParameter(f"{name}: must be {'>' if above else '≥'} {lo:g}, got {v:g}")
    if below is not None and v >= below:
        raise BadParameter(f"{name}: must be < {below:g}, got {v:g}")
    return v


def _check_out(out, lora: bool) -> Path:
    out = Path(out)
    if lora:
        if out.suffix != ".safetensors":
            raise BadParameter(f"--out: a LoRA is one file; name it NAME.safetensors (got {out})")
        if out.exists():
            raise UserError(f"{out}: exists; choose another --out (a LoRA file is never overwritten)")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists; choose another --out (a new model folder is written there)")
    return out


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _Stream:
    """The global sample stream of one set of N items (see the module docstring)."""

    def __init__(self, n: int, seed: int, tag: int, P_mean: float, P_std: float, cond_drop: float):
        self.n, self.seed, self.tag = n, seed, tag
        self.P_mean, self.P_std, self.cond_drop = P_mean, P_std, cond_drop
        self._perm = None  # (epoch, permutation)

    def draw(self, k: int, shape):
        """(item index, epoch, σ, noise, condition dropped) of global sample k."""
        import torch

        from noisebrush.seeding import generator

        epoch, pos = divmod(k, self.n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(self.n, generator=generator(self.seed, epoch, self.tag, 0xDA7A)))
        g = generator(self.seed, k, self.tag, 0x5A)
        sigma = math.exp(self.P_mean + self.P_std * float(torch.randn((), generator=g, dtype=torch.float64)))
        noise = torch.randn(shape, generator=g)
        drop = bool(torch.rand((), generator=g, dtype=torch.float64) < self.cond_drop)
        return int(self._perm[1][pos]), epoch, sigma, noise, drop


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
    import torch

    from noisebrush.paint.pipeline import pick_device

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    mode = "lora" if lora else "full"
    # -- every option checked before any work ----------------------------------------------------------------------
    if data is None or str(data).strip() == "":
        raise BadParameter("--data: the folder of pictures to fine-tune on")
    steps = _whole("--steps", DEFAULTS[mode]["steps"] if steps is None else steps, 1)
    lr = _number("--lr", DEFAULTS[mode]["lr"] if lr is None else lr, 0.0, above=True)
    batch_size = _whole("--batch-size", batch_size, 1, 4096)
    seed = _whole("--seed", seed, 0)
    if lora:
        from noisebrush.nets.lora import _check_rank

        try:
            rank, alpha = _check_rank(rank, alpha)
        except BadParameter as e:
            raise BadParameter(f"--{e}") from None
    ema_decay = _number("ema_decay", ema_decay, 0.0, below=1.0)
    cond_drop = _number("cond_drop", cond_drop, 0.0, below=1.0)
    cfg = _number("cfg", cfg, 0.0)
    memorization_n = _whole("memorization_n", memorization_n, 0)
    sample_steps = _whole("sample_steps", sample_steps, 1)
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
    prior_weight = _number("--prior-weight", 1.0 if prior_weight is None else prior_weight, 0.0)
    if prior_images is not None:
        prior_images = _whole("prior_images", prior_images, 1, 100_000)
    if class_prompt is not None:
        listed = [class_prompt] if isinstance(class_prompt, str) else class_prompt
        if not isinstance(listed, (list, tuple)) or not listed or \
                not all(isinstance(c, str) and "\n" not in c for c in listed):
            raise BadParameter(f"--class-prompt: one line of text, got {class_prompt!r}")
    dev = pick_device(device)
    out = _check_out(default_out(data, lora) if out is None else out, lora)

    import noisebrush
    from noisebrush.data.folder import ImageFolder
    from noisebrush.diffusion import EDMPrecond
    from noisebrush.diffusion.losses import edm_loss
    from noisebrush.eval.metrics import memorization
    from noisebrush.eval.sampling import sample_many
    from noisebrush.seeding import mix
    from noisebrush.train.ema import EMA
    from noisebrush.train.lr import make_scheduler
    from noisebrush.train.loop import _cpu_bf16_fast, _has_accelerator, _hardware

    say = progress or (lambda *a: None)
    pipe = noisebrush.load(base, device=dev)
    cond_kind = pipe.condition
    if cond_kind == "label":
        raise UserError(f"{base}: a class-label model; fine-tuning supports text-conditioned and unconditional "
                        f"models")
    if pipe.dims != 2 or pipe.channels != 3:
        raise UserError(f"{base}: fine-tuning on pictures needs a model of 2-D RGB pictures")
    if cond_kind != "text" and (token is not None or class_prompt is not None):
        raise BadParameter(f"--{'token' if token is not None else 'class-prompt'}: {base} is not text-conditioned")
    ds = ImageFolder(data, resolution=pipe.resolution, crop="center", flip=flip, seed=seed)
    n = len(ds)
    captions = [caption_with_token(c, token) for c in ds.captions]
    images = torch.stack([ds.get(i, 0)["image"] for i in range(n)])  # epoch 0 (no flip): the pictures as they are
    prov_cfg = (pipe.config.get("provenance") or {}).get("config") or {}
    P_mean, P_std = float(prov_cfg.get("P_mean", -1.2)), float(prov_cfg.get("P_std", 1.2))
    sigma_data = float(pipe.config["sigma_data"])

    def encode(prompts):
        if cond_kind != "text":
            return None
        return pipe.text_encoder.encode(list(prompts))

    data_tok = encode(captions)
    if cond_kind == "text" and not any(captions):
        log.warning("%s: no captions and no token: the model learns these pictures for the empty prompt", data)

    # -- prior preservation: the base model paints the class pictures ----------------------------------------------
    prior = None
    if prior_preservation:
        m = prior_images or max(8, min(100, 2 * n))
        if cond_kind == "text":
            if class_prompt is None:
                per_item = [c.strip() or "a picture" for c in ds.captions]
            else:
                per_item = [class_prompt] if isinstance(class_prompt, str) else list(class_prompt)
            prompts = [per_item[i % len(per_item)] for i in range(m)]
            if class_prompt is None and _trained_on_builtin(pipe.config):
                # a broad prior: every other class picture paints a caption of the base's own training set
                from noisebrush.data.procedural import ProceduralArt

                art = ProceduralArt(resolution=pipe.resolution, size=m, seed=mix(seed, 0xBA5E) % (1 << 31))
                prompts = [prompts[i // 2] if i % 2 == 0 else art.caption(i) for i in range(m)]
        else:
            prompts = None
        say("class pictures", 0, m, "")
        pics, _ = sample_many(pipe, m, prompts=prompts, seed=mix(seed, 0xC1A55) % (1 << 31), batch=32,
                              steps=sample_steps, cfg=cfg, progress=lambda d, t: say("class pictures", d, t, ""))
        prior = {"images": pics.float().cpu(), "captions": prompts, "tok": encode(prompts) if prompts else None}

    # -- the network, its optimizer and Accelerate -------------------------------------------------------------------
    from accelerate import Accelerator

    mp = precision
    if mp == "auto":
        mp = "bf16" if (_has_accelerator() or _cpu_bf16_fast()) and dev.type in ("cpu", "cuda") else "no"
    acc = Accelerator(cpu=dev.type == "cpu")  # mixed precision by explicit autocast below: Accelerate's state is a
    #                                           process-wide singleton whose precision cannot change once set
    net = copy.deepcopy(pipe.net).float()
    if lora:
        from noisebrush.nets.lora import DEFAULT_TARGETS, add_lora

        add_lora(net, rank, alpha, targets=lora_targets or DEFAULT_TARGETS, seed=seed)
    else:
        net.requires_grad_(True)
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    n_trained = sum(p.numel() for p in params)
    ema = EMA(net, ema_decay)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    sched = make_scheduler(opt, "cosine", steps, warmup=min(20, steps // 10), final=0.1)
    model, opt = acc.prepare(net, opt)
    ema.model.to(acc.device)
    den = EDMPrecond(model, sigma_data=sigma_data)

    def autocast():
        if mp == "bf16":
            return torch.autocast(acc.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def conditions(tok, idx, drops):
        if tok is None:
            return {}
        t, m_ = tok
        idx = torch.as_tensor(idx)
        return {"text": t[idx], "text_mask": m_[idx], "drop": torch.as_tensor(drops, dtype=torch.bool)}

    def cat_cond(a, b):
        return {k: torch.cat([a[k], b[k]]) for k in a} if a else {}

    @torch.no_grad()
    def eval_loss(module) -> float:
        """Mean EDM loss over the user's pictures at the fixed σ levels, with fixed noise (no condition dropout)."""
        from noisebrush.seeding import generator

        pre = EDMPrecond(module, sigma_data=sigma_data)
        was = module.training
        module.eval()
        rows = [(i, s) for i in range(n) for s in range(len(EVAL_SIGMAS))]
        total = 0.0
        for c in range(0, len(rows), 64):
            chunk = rows[c:c + 64]
            idx = [i for i, _ in chunk]
            sig = torch.tensor([EVAL_SIGMAS[s] for _, s in chunk], dtype=torch.float64)
            noise = torch.stack([torch.randn(images.shape[1:], generator=generator(seed, i, s, 0xE7A1))
                                 for i, s in chunk])
            cond = {k: v.to(acc.device) for k, v in conditions(data_tok, idx, [False] * len(idx)).items()}
            with autocast():
                per = edm_loss(pre, images[idx].to(acc.device), sigma=sig.to(acc.device),
                               noise=noise.to(acc.device), sigma_data=sigma_data, **cond)
            total += float(per.float().sum())
        module.train(was)
        return total / len(rows)

    loss_before = eval_loss(model)

    # -- the loop ----------------------------------------------------------------------------------------------------
    data_stream = _Stream(n, seed, 0xDA, P_mean, P_std, cond_drop)
    prior_stream = _Stream(prior["images"].shape[0], seed, 0x9A, P_mean, P_std, cond_drop) if prior else None
    shape = tuple(images.shape[1:])
    losses, skipped = [], 0
    t_train, c_train = time.perf_counter(), time.process_time()
    say("training", 0, steps, "")
    for step in range(steps):
        xs, sig, noi, idx, drops = [], [], [], [], []
        for k in range(step * batch_size, (step + 1) * batch_size):
            i, epoch, s, z, d = data_stream.draw(k, shape)
            xs.append(ds.get(i, epoch)["image"] if flip else images[i])
            sig.append(s), noi.append(z), idx.append(i), drops.append(d)
        cond = conditions(data_tok, idx, drops)
        weights = [1.0 / batch_size] * batch_size
        if prior is not None:
            pidx, pdrops = [], []
            for k in range(step * batch_size, (step + 1) * batch_size):
                i, _, s, z, d = prior_stream.draw(k, shape)
                xs.append(prior["images"][i])
                sig.append(s), noi.append(z), pidx.append(i), pdrops.append(d)
            cond = cat_cond(cond, conditions(prior["tok"], pidx, pdrops))
            weights += [prior_weight / batch_size] * batch_size
        dv = acc.device
        x0 = torch.stack(xs).to(dv)
        cond = {k: v.to(dv) for k, v in cond.items()}
        with autocast():
            per = edm_loss(den, x0, sigma=torch.tensor(sig, dtype=torch.float64, device=dv),
                           noise=torch.stack(noi).to(dv), sigma_data=sigma_data, **cond)
        loss = (per.float() * torch.tensor(weights, device=dv)).sum()
        acc.backward(loss)
        gnorm = acc.clip_grad_norm_(params, 1.0)
        ok = bool(torch.isfinite(torch.as_tensor(gnorm)).all()) and bool(torch.isfinite(per).all())
        if ok:
            opt.step()
            if not lora:
                net.project_()  # forced weight normalisation (EDM2)
            ema.update(net)
        else:
            skipped += 1
            log.warning("step %d skipped: loss or gradient is not finite", step)
        opt.zero_grad(set_to_none=True)
        sched.step()
        data_loss = float(per[:batch_size].detach().float().mean())
        losses.append(data_loss)
        say("training", step + 1, steps, f"loss {data_loss:.4f}")
    train_wall, train_cpu = time.perf_counter() - t_train, time.process_time() - c_train
    loss_after = eval_loss(ema.model)

    # -- write the result --------------------------------------------------------------------------------------------
    from noisebrush import __version__

    provenance = {
        "noisebrush": __version__, "command": command or "python API", "kind": f"finetune ({mode})",
        "base": pipe.name, "base_hash": pipe.hash, "data": str(Path(data).resolve()), "pictures": n,
        "token": token, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "ema_decay": ema_decay,
        "cond_drop": cond_drop, "prior_preservation": None if prior is None else
        {"pictures": int(prior["images"].shape[0]), "weight": prior_weight,
         "class_prompt": class_prompt if isinstance(class_prompt, (str, type(None))) else list(class_prompt)[:3]},
        "precision": mp, "hardware": _hardware(acc.device), "train_seconds": round(train_wall, 1),
        "train_cpu_seconds": round(train_cpu, 1), "skipped": skipped,
    }
    if lora:
        from noisebrush.nets.lora import adapter_tensors, save_lora

        provenance.update(rank=rank, alpha=alpha)
        save_lora(out, adapter_tensors(ema.model), rank=rank, alpha=alpha, unet_config=pipe.config["unet"],
                  base_name=pipe.name, base_hash=pipe.hash, token=token, provenance=provenance)
    else:
        _write_model(out, ema.model, pipe.config, provenance, dtype=_weights_dtype(pipe.path))
    log.info("fine-tuned %s on %d pictures (%s, %d steps) → %s", pipe.name, n, mode, steps, out)

    # -- the memorization check on what was written -----------------------------------------------------------------
    memo = None
    if memorization_n and n >= 2:
        if lora:
            from noisebrush.nets.lora import apply_loras

            after = pipe  # its network is the untouched base (training worked on a copy)
            apply_loras(after.net, after.config, after.hash, [(Path(out), 1.0)])
        else:
            after = noisebrush.load(out, device=dev)
        prompts = [captions[i % n] for i in range(memorization_n)] if cond_kind == "text" else None
        say("memorization", 0, memorization_n, "")
        gen, _ = sample_many(after, memorization_n, prompts=prompts, seed=mix(seed, 0x3E30) % (1 << 31), batch=32,
                             steps=sample_steps, cfg=cfg,
                             progress=lambda d, t: say("memorization", d, t, ""))
        m = memorization(gen, images, size=min(16, pipe.resolution))
        ratios = torch.tensor(m["ratios"])
        memo = {"near_copy_fraction": m["near_copy_fraction"], "threshold": m["threshold"],
                "nearest_ratio_median": float(ratios.median()), "pictures_painted": memorization_n,
                "training_pictures": m["training_pictures"], "prompts": sorted(set(prompts or []))[:3]}
    k = max(1, steps // 10)
    return {
        "mode": mode, "out": str(out), "bytes": _bytes(Path(out)), "base": pipe.name, "base_hash": pipe.hash,
        "data": str(data), "pictures": n, "token": token, "caption_example": captions[0],
        "steps": steps, "batch_size": batch_size, "lr": lr, "rank": rank if lora else None,
        "alpha": alpha if lora else None, "params_trained": n_trained,
        "prior_preservation": provenance["prior_preservation"], "precision": mp, "device": str(acc.device),
        "loss_before": loss_before, "loss_after": loss_after,
        "train_loss_first": sum(losses[:k]) / len(losses[:k]), "train_loss_last": sum(losses[-k:]) / len(losses[-k:]),
        "skipped": skipped, "train_seconds": train_wall, "train_cpu_seconds": train_cpu,
        "cpu_seconds": time.process_time() - t_cpu, "wall_seconds": time.perf_counter() - t_wall,
        "threads": torch.get_num_threads(), "memorization": memo,
    }


def _trained_on_builtin(config: dict) -> bool:
    """Whether a model was trained on the built-in set (directly, or fine-tuned from one that was)."""
    prov = config.get("provenance") or {}
    if prov.get("data") == "builtin":
        return True
    return (prov.get("base_provenance") or {}).get("data") == "builtin" and prov.get("base") == "builtin"


def _weights_dtype(model_dir: Path):
    """The floating-point dtype of a model folder's weights (the built-in model ships float16)."""
    import torch
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        for key in f.keys():
            t = f.get_slice(key)
            dtype = {"F16": torch.float16, "BF16": torch.bfloat16}.get(t.get_dtype(), torch.float32)
            return dtype
    return torch.float32


def _write_model(out: Path, net, base_config: dict, provenance: dict, dtype=None) -> None:
    """A model folder like the trainer's export: model.safetensors (the EMA weights, in ``dtype``: the base's),
    then config.json (the base's description with this run's provenance; written last, so a folder with a
    config.json is complete)."""
    import torch
    from safetensors.torch import save_file

    from noisebrush.io.atomic import atomic_path, atomic_write_text

    dtype = dtype or torch.float32
    out.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous()
             for k, v in net.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, tmp)
    provenance = {**provenance, "weights_dtype": str(dtype).replace("torch.", "")}
    conf = {k: v for k, v in base_config.items() if k != "provenance"}
    base_prov = base_config.get("provenance") or {}
    conf["provenance"] = {**provenance, "data": provenance["data"], "init": provenance["base"],
                          "images_seen": provenance["steps"] * provenance["batch_size"],
                          "base_provenance": {k: base_prov.get(k) for k in ("command", "data", "steps",
                                                                            "train_seconds", "hardware")
                                              if k in base_prov}}
    atomic_write_text(out / "config.json", json.dumps(conf, indent=2))


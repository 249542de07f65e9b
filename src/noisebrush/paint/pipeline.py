"""Where a model, a sampler and conditioning meet: ``noisebrush.load(model)`` → :class:`Pipeline`.

    import noisebrush
    pipe = noisebrush.load("builtin")                       # or a model folder written by the trainer
    images = pipe("a red sun over purple mountains", steps=20, seed=7, n=4)   # PIL images, recipe in .info
    noisebrush.save(images[0], "sun.png")                   # a PNG that carries its recipe
    tensors, recipes = pipe.generate("a red sun", seed=7)   # N×C×H×W in [-1, 1] and one recipe dict each
    pipe.to("cuda")                                         # or "mps", "cpu"; default: the best available

A model folder holds ``config.json`` (architecture, conditioning, σ_data, format version, provenance) and
``model.safetensors`` (EMA weights). Nothing is unpickled.

**Same seed, same picture.** Image i of a call gets the seed ``seed + i``; its starting noise and every noise the
sampler draws come from that seed's own generator, and the network is evaluated one picture at a time, so a picture
does not depend on how many others are painted with it. :meth:`Pipeline.recipe` records everything needed to paint it
again (it goes into every PNG the CLI writes; :func:`noisebrush.paint.recipe.replay` paints from it).

**What and how.** ``pipe.modality`` (:mod:`noisebrush.paint.modality`) says what the model paints — images, clips
(frames ≠ height allowed), volumes — with its size rule, recipe fields and decoding; ``pipe.schedule``
(:mod:`noisebrush.paint.options`) is the σ schedule, sampler and step count the model folder records, used whenever
a caller leaves them ``None``; ``pipe.check(...)`` validates options into a frozen ``PaintOptions``.

**Negative prompts and weights** (text models). ``negative="murky, dark"`` guides away from that text's prediction
instead of the unconditional one (:meth:`Pipeline.negative_conditions`); ``"a (red:1.4) circle"`` scales the effect of
"red" on the picture by 1.4 (:meth:`Pipeline.condition_mix`; ``(word)`` is 1.1, weights 0–3, one level, ``\\(``
for a literal parenthesis). Recipes record the prompt as typed and ``negative`` when there is one; a prompt without
weights and no negative paint exactly as before.

**Ignored input is said aloud** (:func:`noisebrush.errors.warn`, one line): a prompt or guidance scale given to an
unconditional model (its recipe records cfg 1, what was used), a prompt longer than the text encoder reads
(:meth:`noisebrush.nets.text.TextEncoder.cut_message`), and a variation, inpainting or outpainting of a text model
with no prompt from a picture that carries no recipe.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from pathlib import Path

import torch

from noisebrush import __version__, checks
from noisebrush.devices import pick_device, use_all_cores
from noisebrush.diffusion import EDMPrecond, SampleNoise
from noisebrush.diffusion.sample import StepInfo, make_denoiser, sample, start
from noisebrush.errors import BadParameter, UserError, warn
from noisebrush.io import model_folder
from noisebrush.io.hashing import file_sha256
from noisebrush.io.png import RECIPE_KEY, read_recipe
from noisebrush.nets import registry
from noisebrush.nets.lora import apply_loras, parse_lora_spec
from noisebrush.nets.text import TextEncoder, parse_weights
from noisebrush.paint import animate as clips, edit, runtime as runtimes, sculpt as shapes, upscale as stage
from noisebrush.paint.guides import Guide, guidance_recipes
from noisebrush.paint.modality import modality_for
from noisebrush.paint.options import PaintOptions, check_common, check_size, learned_schedules, model_schedule

__all__ = ["load", "Pipeline", "StepInfo", "DEFAULT_CFG"]

log = logging.getLogger("noisebrush.paint.pipeline")

DEFAULT_CFG = 3.0  # the guidance scale every painting function defaults to


def _quoted(prompt: str, limit: int = 40) -> str:
    """A prompt for a one-line message: quoted, and cut with … when long."""
    return repr(prompt if len(prompt) <= limit else prompt[:limit - 1] + "…")


def _recipe_of(image) -> dict | None:
    """The recipe a picture carries (a noisebrush PNG's chunk, or a PIL image's ``info``), or None."""
    text = None
    if isinstance(image, (str, Path)):
        try:
            return read_recipe(image)
        except (UserError, RecursionError):  # no recipe, or one nested too deeply to read
            return None
    info = getattr(image, "info", None)
    if isinstance(info, dict):
        text = info.get(RECIPE_KEY)
    if isinstance(text, dict):
        return text
    if isinstance(text, str):
        try:
            rec = json.loads(text)
        except (ValueError, RecursionError):
            return None
        return rec if isinstance(rec, dict) else None
    return None


def _negative_text(negative: str) -> str:
    """A negative prompt as the encoder reads it (escapes resolved); weights are refused in one line: a negative
    is one condition of guidance, with no mixture of its own."""
    weighted = parse_weights(negative, "negative")
    if weighted.spans:
        raise BadParameter(f"negative: weights such as (word:1.3) work in the prompt only, got {_quoted(negative)} "
                           f"(write \\( and \\) for literal parentheses)")
    return weighted.text


class _OnDevice(torch.nn.Module):
    """Runs the raw network on its device; everything around it (the sampler's state, σ arithmetic in float64,
    preconditioning) stays on the CPU. That keeps float64 off devices without it (mps), and makes the sampler's
    arithmetic identical whatever the device."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.device = torch.device("cpu")

    def forward(self, x, c_noise, **cond):
        dev = self.device
        cond = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in cond.items()}
        return self.net(x.to(dev), c_noise.to(dev, torch.float32), **cond).to("cpu", torch.float32)


class Pipeline:
    def __init__(self, net, config: dict, path: Path, *, device=None, name: str | None = None,
                 loras: list[dict] | None = None, runtime: str = "torch", onnx=None, say=None):
        self.config = config
        self.path = path
        self.name = name or path.name
        self.hash = model_folder.weights_hash(path)
        self.net = net.eval().requires_grad_(False)
        if hasattr(self.net, "bake"):  # fix the normalised weights once: bit-identical, ~1.3× faster per picture
            self.net.bake()
        self._runner = _OnDevice(self.net)
        self.den = EDMPrecond(self._runner, sigma_data=float(config["sigma_data"]))
        self.condition = config["condition"]
        self.resolution = int(config["resolution"])
        self.channels = int(model_folder.network_description(config).get("in_channels", 3))
        self.dims = int(model_folder.network_description(config).get("dims", 2))
        self.classes = config.get("classes") or []
        # "image", or "sr": a super-resolution stage (noisebrush.paint.upscale) that paints `scale` times larger
        self.task = config.get("task", "image")
        self.superres = config.get("superres") or {}
        self.scale = int(self.superres.get("scale", 1))
        self.schedule = model_schedule(config, path / "config.json")  # σ schedule, sampler, steps unless told
        # with the folder's learned schedules (`noisebrush tune`): used for their sampler and steps
        self.schedule = dataclasses.replace(self.schedule, learned=learned_schedules(path, self.hash))
        # "diffusion", or a diffusion GAN ("ddgan", "diffusion-gan", "gan": noisebrush.train.gan): its generator
        # paints in its own few steps with the `gan` sampler, drawing a latent of `latent` values per step
        self.method = config.get("method", "diffusion")
        self.latent = int((config.get("gan") or {}).get("latent", 0))
        if self.method != "diffusion" and (self.latent < 1 or self.schedule.sampler != "gan"):
            raise UserError(f"{path / 'config.json'}: a {self.method} model needs \"gan\": {{\"latent\": N}} and "
                            f"the gan sampler in its schedule")
        try:
            self.modality = modality_for(config)  # image, clip, volume: shape, size rule, recipe fields, decoding
        except (TypeError, ValueError) as e:  # BadParameter, or a description no network was built from
            raise UserError(f"{path / 'config.json'}: {e}") from None
        self._text = None
        self._said: set[str] = set()  # the warnings this pipeline has given (each is said once)
        self._pending: str | None = None  # a warning to give when painting starts
        self.loras = list(loras or [])  # LoRA adapters merged into the weights (noisebrush.nets.lora.apply_loras)
        self.device = torch.device("cpu")
        # "torch", or "onnx": the network runs as an ONNX graph in ONNX Runtime (noisebrush.paint.runtime); the
        # given graph file (an int8 one, say) is recorded in recipes by path and hash, the cached one is not
        self.runtime = runtimes.check_runtime(runtime)
        self.onnx_file: dict | None = None
        if onnx is not None and runtime != "onnx":
            raise BadParameter("onnx: a graph file is run with runtime='onnx' (--runtime onnx)")
        if runtime == "onnx":
            if device not in (None, "auto", "cpu") and str(device) != "cpu":
                raise BadParameter(f"device: the onnx runtime paints on the CPU, got {device!r}")
            graph = Path(onnx) if onnx is not None else runtimes.cached_graph(self, **({"say": say} if say else {}))
            self._runner = runtimes.open_graph(self, graph)
            self.den = EDMPrecond(self._runner, sigma_data=float(config["sigma_data"]))
            if onnx is not None:
                self.onnx_file = {"file": str(graph.resolve()), "hash": file_sha256(graph)[:10]}
            device = "cpu"
        self.to(pick_device(device))

    # -- devices --------------------------------------------------------------------------------------------------
    def to(self, device) -> "Pipeline":
        dev = pick_device(device) if not isinstance(device, torch.device) else device
        if self.runtime == "onnx" and dev.type != "cpu":
            raise BadParameter(f"device: the onnx runtime paints on the CPU, got {dev.type}")
        self.net.to(dev)
        self._runner.device = dev
        self.device = dev
        return self

    @property
    def text_encoder(self):
        if self._text is None:
            te = self.config.get("text_encoder") or {}
            self._text = TextEncoder(max_tokens=int(te.get("max_tokens", 16)))
        return self._text

    # -- conditioning ---------------------------------------------------------------------------------------------
    def conditions(self, prompt: str = "", label=None) -> dict:
        """The network's condition tensors for one picture (one row): text tokens and mask, a class label, or {}
        for an unconditional model. A text prompt is read without its weights (``(word:1.3)`` encodes as ``word``;
        :meth:`condition_mix` applies them)."""
        if self.condition == "text":
            return self._text_condition(parse_weights(prompt).text, "prompt")
        if self.condition == "label":
            return {"labels": torch.tensor([self._label_index(prompt, label)])}
        return {}

    def _text_condition(self, text: str, name: str) -> dict:
        self._warn_once(self.text_encoder.cut_message(text, name))  # a prompt longer than the model reads
        tok, mask = self.text_encoder.encode([text])
        return {"text": tok, "text_mask": mask}

    def condition_mix(self, prompt: str = "", label=None) -> list[tuple[dict, float]]:
        """The conditions of ``prompt`` as (condition, weight) pairs whose weighted denoisers add up to the weighted
        prompt's: ``[(conditions, 1.0)]`` for a prompt without weights (and every label or unconditional model).

        Prompt weighting (``(red:1.3)``, :func:`noisebrush.nets.text.parse_weights`): the prompt without the weight
        syntax is encoded once; for each distinct weight w ≠ 1, S is the set of word pieces its spans cover, and the
        condition "prompt without S" is the same tokens with S's mask bits off (S's words are neither attended to
        by cross-attention nor part of the pooled text embedding). The conditional prediction becomes
        D(p) + Σ_S (w − 1)·(D(p) − D(p∖S)): the effect of S's words on the picture times w (w = 0 removes them,
        w = 2 doubles their effect). That is the list [(p, 1 + Σ(w − 1)), (p∖S, 1 − w) …], weights summing to 1,
        which guidance mixes (:func:`noisebrush.diffusion.guidance.guided_call`) — one more network evaluation per
        distinct weight and step. Scaling the weighted tokens' embeddings, as AUTOMATIC1111 does, would change
        nothing here: the network normalises every token embedding to unit length before using it."""
        if self.condition != "text":
            return [(self.conditions(prompt, label), 1.0)]
        weighted = parse_weights(prompt)
        cond = self._text_condition(weighted.text, "prompt")
        groups = self.text_encoder.weight_groups(weighted)
        if not groups:
            return [(cond, 1.0)]
        pairs = [(cond, 1.0 + sum(w - 1.0 for w, _ in groups))]
        for w, pieces in groups:
            pairs.append(({"text": cond["text"], "text_mask": cond["text_mask"] & ~pieces[None]}, 1.0 - w))
        return pairs

    def negative_conditions(self, negative: str | None, cfg: float) -> dict | None:
        """The conditions of a negative prompt, which take the unconditional half's place in classifier-free
        guidance (:func:`noisebrush.diffusion.sample.make_denoiser`), or None: no negative (``""``), a model that
        takes no text, or ``cfg`` 1 (no guidance; both said in one warning line)."""
        if not negative:
            return None
        if self.condition != "text":
            self._warn_once(f"this model takes no text: the negative prompt {_quoted(negative)} is ignored")
            return None
        if float(cfg) == 1.0:
            self._warn_once("--negative has no effect at --cfg 1 (it replaces the unconditional half of guidance)")
            return None
        return self._text_condition(_negative_text(negative), "negative")

    # -- painting -------------------------------------------------------------------------------------------------
    def recipe(self, prompt: str, *, seed: int, steps: int, sampler: str, cfg: float, size,
               sigma_min: float, sigma_max: float, label=None, guidance=None, negative: str | None = None,
               levels=None) -> dict:
        """Everything needed to paint a picture again. ``size``: one size per axis of the modality, or an int for
        every spatial axis (images: one side or (height, width)); the recipe records the modality's fields. The
        prompt is recorded as typed (with its weights); ``negative`` only when there is one (absent: none)."""
        rec = {"prompt": prompt, "label": label, "sampler": sampler, "steps": steps, "cfg": cfg, "seed": seed,
               **self.modality.recipe_fields(self.modality.axes_of(size)), "sigma_min": sigma_min,
               "sigma_max": sigma_max, "model": self.name, "model_hash": self.hash, "noisebrush": __version__}
        if negative:
            rec["negative"] = negative
        if levels is not None:  # a learned schedule's levels (absent: the folder's schedule between the σ bounds)
            rec["sigmas"] = [float(v) for v in levels]
        if any(c in prompt for c in "()\\"):  # read with (word:w) weights; older recipes painted these literally
            rec["prompt_syntax"] = "weights"
        if self.loras:
            rec["lora"] = [dict(d) for d in self.loras]
        if self.runtime != "torch":  # absent: torch (every recipe before issue 19)
            rec["runtime"] = self.runtime
            if self.onnx_file:
                rec["onnx"] = dict(self.onnx_file)
        if guidance:
            rec["guidance"] = guidance_recipes(guidance)
        return rec

    def check(self, prompt: str = "", *, steps=None, seed=0, n=1, sampler=None, cfg=3.0, size=None,
              sigma_min=None, sigma_max=None, label=None, memory: bool = True, negative: str | None = None,
              sigmas=None) -> PaintOptions:
        """Validate painting options (BadParameter naming the first bad one) → :class:`PaintOptions`.

        ``None`` for steps, sampler, sigma_min or sigma_max: the model folder's ``schedule``; ``size``: ``None``
        (the model's), an int (every spatial axis) or one size per axis of :attr:`modality`. Bounds: see
        :mod:`noisebrush.paint.options` and :mod:`noisebrush.paint.modality`; the memory ``n`` pictures of ``size``
        need is checked (:func:`noisebrush.paint.options.check_size`) unless ``memory=False`` (the edits, which paint
        at a picture's own size, check that size themselves). A text model's prompt weights and ``negative`` are
        checked too (:func:`noisebrush.nets.text.parse_weights`; a negative takes no weights). The model folder's
        learned schedule for the sampler at these steps (``noisebrush tune``) is used unless other σ bounds are
        asked for; ``sigmas``: σ levels given outright (a recipe's replay), or ``False``: the folder's schedule, never
        a learned one (the replay of a recipe that records no levels)."""
        self._check_method(steps, sampler, sigma_min, sigma_max)
        common = check_common(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, sigma_min=sigma_min,
                              sigma_max=sigma_max, schedule=self.schedule, sigmas=sigmas)
        if self.is_gan and common["cfg"] != 1.0:
            common["cfg"] = self._no_guidance(common["cfg"])
        batch = None
        if negative is not None:
            checks.text("negative", negative)
        if self.condition == "text":
            weights = {w for _, _, w in parse_weights(prompt).spans if w != 1.0}
            batch = len(weights) + 2 if weights else None  # one more network evaluation per distinct weight
            if negative:
                _negative_text(negative)
        size = check_size(self, size, n=common["n"], cfg=common["cfg"], batch=batch) if memory else \
            self.modality.check_size(size)
        if self.condition == "label":
            self._label_index(prompt, label)
        if not self.conditional:
            common["cfg"] = self._ignored_by_unconditional(prompt, common["cfg"])
        return PaintOptions(**common, size=size, label=label)

    @property
    def is_gan(self) -> bool:
        """Whether the model is a diffusion GAN's generator (painted by the ``gan`` sampler in its own steps)."""
        return self.method != "diffusion"

    def _check_method(self, steps, sampler, sigma_min, sigma_max) -> None:
        """A GAN model paints its own ladder with the gan sampler; a diffusion model never takes the gan sampler."""
        if not self.is_gan:
            if sampler == "gan":
                raise BadParameter(f"sampler: gan paints diffusion-GAN models; {self.name} is a diffusion model")
            return
        what = f"this {self.method} model"
        if sampler is not None and sampler != "gan":
            raise BadParameter(f"sampler: {what} paints with the gan sampler (its generator's chain), got {sampler!r}")
        if steps is not None and steps != self.schedule.steps:
            raise BadParameter(f"steps: {what} paints in exactly {self.schedule.steps} step"
                               f"{'s' * (self.schedule.steps != 1)} (the noise levels its generator learned), "
                               f"got {steps!r}")
        own = (self.schedule.sigma_min, self.schedule.sigma_max)  # what its recipes record: a replay gives them
        if (sigma_min is not None and sigma_min != own[0]) or (sigma_max is not None and sigma_max != own[1]):
            raise BadParameter(f"sigma_min/sigma_max: {what} paints on its own noise levels")

    def _no_guidance(self, cfg: float) -> float:
        """A GAN's generator learned no unconditional prediction: guidance does not apply (said once unless the
        scale is the default); returns 1, what the recipe records."""
        if cfg != DEFAULT_CFG:
            self._warn_once(f"this {self.method} model paints without guidance: --cfg {cfg:g} is ignored")
        return 1.0

    def needs_diffusion(self, what: str) -> None:
        """One UserError line when ``what`` (inpainting, a morph, …) is asked of a GAN model: those walks take many
        small steps of a denoiser, which a GAN's generator does not have."""
        if self.is_gan:
            raise UserError(f"{self.name}: {what} needs a diffusion model; this is a {self.method} model (it paints "
                            f"and varies pictures)")

    def sampler_options(self, sampler: str) -> dict:
        """What the sampler needs besides the denoiser: the gan sampler the generator's latent size."""
        return {"latent": self.latent} if sampler == "gan" else {}

    @property
    def conditional(self) -> bool:
        """Whether the model takes a condition (a text prompt or a class label)."""
        return self.condition in ("text", "label")

    def _ignored_by_unconditional(self, prompt: str, cfg: float) -> float:
        """An unconditional model paints without prompt or guidance: say so in one warning line when the caller gave
        a prompt or a guidance scale other than the default, and return the scale actually used (1: none), which is
        what the recipe records. (The sampling core never guides a model without conditions, so the pixels are the
        same whatever ``cfg`` was given: old recipes that recorded 3.0 replay unchanged.)"""
        if prompt:
            self._warn_once(f"this model takes no prompt: {_quoted(prompt)} and --cfg are ignored")
        elif cfg not in (1.0, DEFAULT_CFG):
            self._warn_once(f"this model takes no prompt: --cfg {cfg:g} is ignored")
        return 1.0

    def _warn_once(self, message: str | None) -> None:
        """:func:`noisebrush.errors.warn`, once per message and pipeline (a command checks its options, then paints
        with them, perhaps several times: one line is enough)."""
        if message and message not in self._said:
            self._said.add(message)
            warn(message)

    def _no_prompt_message(self, image, prompt: str) -> str | None:
        """vary / inpaint / outpaint of a text model with an empty prompt: the warning to give (None when there is
        none: a prompt was given, the model takes none, or the picture's own recipe was painted without one too)."""
        if self.condition != "text" or prompt != "":
            return None
        try:
            if isinstance(image, (str, Path)) and not Path(image).is_file():
                return None  # the edit itself says the file is missing
        except (OSError, ValueError):  # a name the file system cannot hold: the edit says so
            return None
        name = Path(image).name if isinstance(image, (str, Path)) else "the picture"
        rec = _recipe_of(image)
        if rec is None:
            return f"{name} has no recipe and no prompt was given: painting without a prompt"
        if "sheet" in rec:
            return f"{name} is a contact sheet of several recipes and no prompt was given: painting without a prompt"
        if rec.get("prompt"):
            return f"no prompt was given: painting without one, not with {name}'s own {_quoted(str(rec['prompt']))}"
        return None

    @contextlib.contextmanager
    def _when_painting(self, message: str | None):
        """Hold ``message`` back until painting starts (:meth:`denoiser`, after every option is checked), so a
        request that is refused gets its one error line and no warning."""
        self._pending = message
        try:
            yield
        finally:
            self._pending = None

    def _label_index(self, prompt: str, label) -> int:
        if label is None:
            if prompt in self.classes:
                return self.classes.index(prompt)
            raise BadParameter(f"label: this model paints classes {self.classes}; name one (got {prompt!r})")
        if isinstance(label, str):
            if label not in self.classes:
                raise BadParameter(f"label: unknown class {label!r}; one of {self.classes}")
            return self.classes.index(label)
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(self.classes):
            raise BadParameter(f"label: a class name or an index below {len(self.classes)}, got {label!r}")
        return label

    @torch.no_grad()
    def generate(self, prompt: str = "", *, steps: int | None = None, seed: int = 0, n: int = 1,
                 sampler: str | None = None, cfg: float = 3.0, size=None, sigma_min: float | None = None,
                 sigma_max: float | None = None, label=None, callback=None, stats: dict | None = None,
                 guidance=None, negative: str | None = None, sigmas=None) -> tuple[torch.Tensor, list[dict]]:
        """N×C×(axes) samples in [-1, 1] (images: N×C×H×W) and one recipe per sample.

        ``steps`` steps of ``sampler`` on the model's σ schedule (Karras et al.'s unless its folder names another)
        between ``sigma_min`` and ``sigma_max``; ``None`` takes the model folder's ``schedule`` (else dpmpp_2m, 20
        steps, 0.002…80). ``size``: an int for every spatial axis, or one size per axis of :attr:`modality` (a clip:
        (frames, height, width)); default: the model's. Image i uses seed ``seed + i``; ``cfg`` is the
        classifier-free guidance scale (1 = plain conditional); ``callback(StepInfo)`` sees x_t and x̂_0 at every
        step. ``stats``: a dict that samplers keeping statistics (``langevin``: corrector steps per level;
        ``adaptive``: accepted and rejected steps) fill in; other samplers leave it as it is. ``guidance``: a list of :class:`noisebrush.paint.guides.Guide`
        (a palette, a learned preference) that steer every step through the x̂_0-guidance hook. ``negative``: a
        negative prompt (text models): guidance pushes away from it instead of from the unconditional prediction
        (:meth:`negative_conditions`); ``""``/None: none. ``prompt`` may weight words: ``"a (red:1.3) circle"``
        (:meth:`condition_mix`). ``sigmas``: the σ levels outright (steps + 1 values ending in 0), as a recipe of
        a learned schedule records them; ``False``: the folder's schedule even where it has a learned one;
        otherwise (None) the folder's learned schedule for this sampler and steps, when it has one (:meth:`check`).
        """
        if self.task == "sr":
            raise UserError(f"{self.name}: is a super-resolution stage; it paints from a picture "
                            f"(`noisebrush upscale`, pipe.upscale)")
        opts = self.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, size=size,
                          sigma_min=sigma_min, sigma_max=sigma_max, label=label, negative=negative, sigmas=sigmas)
        guidance = self.check_guidance(guidance)
        seeds = list(opts.seeds)
        noise = SampleNoise.from_seeds(seeds)
        sigmas = opts.sigmas()
        # the sampler runs on the CPU; only the net moves. A clip's frames start from noise correlated as trained
        shape = self.modality.shape(opts.size)
        x = clips.start_clip(self, noise, shape, sigmas) if self.modality.kind == "clip" else start(noise, shape, sigmas)
        picture = None
        if clips.conditioned(self):  # a clip model that reads given frames: here, none are given
            picture = {"low": torch.zeros(1, self.channels + 1, *opts.size)}
        den = self.denoiser(prompt, label=label, cfg=opts.cfg, guidance=guidance, negative=negative, picture=picture)
        out = sample(den, x, sigmas, noise, sampler=opts.sampler, callback=callback, stats=stats, steps=opts.steps,
                     **self.sampler_options(opts.sampler))
        recipes = [self.recipe(prompt, seed=s, steps=opts.steps, sampler=opts.sampler, cfg=opts.cfg, size=opts.size,
                               sigma_min=opts.sigma_min, sigma_max=opts.sigma_max, label=label, guidance=guidance,
                               negative=negative, levels=opts.levels)
                   for s in seeds]
        return out.clamp(-1, 1).cpu(), recipes

    # -- the pieces every painting mode shares (noisebrush.paint.edit uses them too) ------------------------------------
    @staticmethod
    def check_guidance(guidance):
        """The guides as a list (``[]`` for None); BadParameter for anything that is not a Guide."""
        if guidance is None:
            return []
        guidance = list(guidance) if isinstance(guidance, (list, tuple)) else [guidance]
        for g in guidance:
            if not isinstance(g, Guide):
                raise BadParameter(f"guidance: expected noisebrush.paint.guides.Guide objects, got {type(g).__name__}")
        return guidance

    def denoiser(self, prompt: str = "", *, label=None, cfg: float = 3.0, guidance=None,
                 negative: str | None = None, picture: dict | None = None, wrap=None):
        """The per-picture denoiser for ``prompt`` (its weights: :meth:`condition_mix`) with classifier-free guidance
        ``cfg`` against ``negative`` (:meth:`negative_conditions`; none: the unconditional prediction) and the guides
        (:func:`noisebrush.diffusion.sample.make_denoiser` with ``batched=False``). ``picture``: conditions every
        evaluation gets, guided or not — a super-resolution stage's ``low`` picture and ``aug`` level, one row per
        picture (:mod:`noisebrush.paint.upscale`); ``wrap``: a function of the preconditioned denoiser that returns
        the one to use (the stage's consistency projection)."""
        if self._pending:  # a warning held back until the painting starts (see _when_painting)
            message, self._pending = self._pending, None
            warn(message)
        pairs = self.condition_mix(prompt, label)
        neg = self.negative_conditions(negative, cfg)
        if picture:
            pairs = [({**c, **picture}, w) for c, w in pairs]
            neg = None if neg is None else {**neg, **picture}
        guides = self.check_guidance(guidance)
        den = self.den if wrap is None else wrap(self.den)
        if len(pairs) == 1:  # no weights: the plain path, bit for bit what it always was
            return make_denoiser(den, pairs[0][0], cfg=cfg, batched=False, guides=guides, negative=neg)
        return make_denoiser(den, mix=pairs, cfg=cfg, batched=False, guides=guides, negative=neg)

    def run_sampler(self, den, x: torch.Tensor, sigmas: torch.Tensor, noise, *, sampler: str = "dpmpp_2m",
                    callback=None, stats: dict | None = None, steps: int | None = None) -> torch.Tensor:
        """Run ``sampler`` from x at sigmas[0] down the schedule; ``callback(StepInfo)`` once per step
        (:func:`noisebrush.diffusion.sample.sample`)."""
        return sample(den, x, sigmas, noise, sampler=sampler, callback=callback, stats=stats, steps=steps,
                      **self.sampler_options(sampler))

    # -- personal art: variations, inpainting, outpainting, morphs (noisebrush.paint.edit) ------------------------------
    def vary(self, image, prompt: str = "", **kwargs):
        """Variations of ``image`` (SDEdit); see :func:`noisebrush.paint.edit.vary`."""
        with self._when_painting(self._no_prompt_message(image, prompt)):
            return edit.vary(self, image, prompt, **kwargs)

    def inpaint(self, image, mask, prompt: str = "", **kwargs):
        """Repaint the white part of ``mask`` (RePaint); see :func:`noisebrush.paint.edit.inpaint`."""
        with self._when_painting(self._no_prompt_message(image, prompt)):
            return edit.inpaint(self, image, mask, prompt, **kwargs)

    def outpaint(self, image, extend, prompt: str = "", **kwargs):
        """Paint beyond the edges of ``image``; see :func:`noisebrush.paint.edit.outpaint`."""
        with self._when_painting(self._no_prompt_message(image, prompt)):
            return edit.outpaint(self, image, extend, prompt, **kwargs)

    def upscale(self, image, prompt: str = "", **kwargs):
        """``image`` painted ``scale`` times larger by this super-resolution stage; see
        :func:`noisebrush.paint.upscale.upscale`."""
        return stage.upscale(self, image, prompt, **kwargs)

    def animate(self, prompt: str = "", **kwargs):
        """Clips from this clip model: text → clip, picture → clip (``first``), interpolation (``first``, ``last``),
        longer clips and loops; see :func:`noisebrush.paint.animate.animate`."""
        return clips.animate(self, prompt, **kwargs)

    def sculpt(self, prompt: str = "", **kwargs):
        """Shapes from this shape model: text → shape, variations of a mesh (``source``, ``strength``), completion
        of part of one (``source``, ``keep``); see :func:`noisebrush.paint.sculpt.sculpt`."""
        return shapes.sculpt(self, prompt, **kwargs)

    def morph(self, prompt: str = "", **kwargs):
        """Frames between two seeds and/or two prompts; see :func:`noisebrush.paint.edit.morph`."""
        return edit.morph(self, prompt, **kwargs)

    def __call__(self, prompt: str = "", **kwargs):
        """What :meth:`generate` paints, decoded by the model's modality: PIL images (clips: a list of PIL frames
        each; volumes: float arrays — :meth:`noisebrush.paint.modality.Modality.decode`).

        Each PIL image carries its recipe in ``image.info["noisebrush"]`` as the JSON text a noisebrush PNG holds;
        ``noisebrush.save(image, "x.png")`` writes it into the file (Pillow's own ``image.save`` drops ``info``)."""
        images, recipes = self.generate(prompt, **kwargs)
        out = self.modality.decode(images)
        for picture, rec in zip(out, recipes):
            if hasattr(picture, "info") and isinstance(picture.info, dict):  # PIL images (not clips or volumes)
                picture.info[RECIPE_KEY] = json.dumps(rec, sort_keys=True)
        return out


def load(model="builtin", *, device=None, lora=None, runtime: str = "torch", onnx=None, say=None) -> Pipeline:
    """Load a model folder (or the built-in model) for painting.

    The network is the one config.json names (:mod:`noisebrush.nets.registry`), evaluated in float32 whatever
    dtype its weights are stored in. ``lora``: LoRA adapters made by ``noisebrush finetune --lora`` to merge into
    the weights — a list of ``"FILE"`` / ``"FILE:weight"`` strings or ``(path, weight)`` pairs (several add up).
    ``runtime="onnx"``: the network runs in ONNX Runtime on the CPU (:mod:`noisebrush.paint.runtime`), from the
    graph file ``onnx`` (``noisebrush export``; its sidecar must name these weights) or, without one, from this
    model's fp32 graph in the cache, exported the first time (``say(line)`` tells; default: stderr)."""
    runtimes.check_runtime(runtime)
    use_all_cores()
    path = model_folder.resolve(model)
    conf = model_folder.read_config(path)
    net = registry.build(conf, source=path / "config.json")
    state = registry.load_weights(path, conf, net)  # completed by its base when the folder names one
    try:
        net.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "mismatch"
        raise UserError(f"{path / 'model.safetensors'}: weights do not fit the network in config.json ({first})") \
            from None
    loras = []
    if lora:
        specs = [parse_lora_spec(str(s)) if isinstance(s, (str, Path)) else (Path(s[0]), float(s[1]))
                 for s in ([lora] if isinstance(lora, (str, Path)) else lora)]
        loras = apply_loras(net, conf, model_folder.weights_hash(path), specs)
    # the recipe names a folder by its absolute path, so `noisebrush reproduce` finds it from anywhere
    name = str(model) if str(model) in model_folder.BUILTIN_MODELS else str(path.resolve())
    return Pipeline(net, conf, path, device=device, name=name,
                    loras=loras, runtime=runtime, onnx=onnx, say=say)

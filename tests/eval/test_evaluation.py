"""``evaluate`` / ``noisebrush eval`` end to end on tiny trained models, the shipped feature network, adherence."""
import json
import sys

import pytest
import torch

from _model_fixture import one_thread, tiny_model  # noqa: E402

from noisebrush.apps.cli import main  # noqa: E402
from noisebrush.data.procedural import ATTRIBUTES, ProceduralArt  # noqa: E402
from noisebrush.eval import evaluate  # noqa: E402
from noisebrush.eval.evaluation import adherence_scores  # noqa: E402
from noisebrush.eval.features import FEATNET_DIR, load_feature_net  # noqa: E402

KEYS = ("fd_art", "kid", "precision", "recall", "swd", "near_copy_fraction")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_shipped_feature_net_is_small_and_reads_attributes():
    size = sum(p.stat().st_size for p in FEATNET_DIR.iterdir())
    assert size <= 5 * 1024 * 1024
    conf = json.loads((FEATNET_DIR / "config.json").read_text())
    assert conf["provenance"]["command"].startswith("python -m noisebrush.eval.train_features")
    fnet = load_feature_net()
    ds = ProceduralArt(32, size=300, seed=4242)  # a data seed nobody trained on
    images = torch.stack([ds[i]["image"] for i in range(300)])
    table = torch.tensor([ds.scene(i).attr_indices() for i in range(300)])
    pred = fnet.predict(images)
    acc = adherence_scores(pred, table)["adherence_per_attribute"]
    for name in ("family", "colour", "colour2", "shape", "sky", "ground"):
        assert acc[name] >= 0.9, (name, acc)
    # another size reads the same (resized to the network's 32 × 32)
    big = ProceduralArt(64, size=60, seed=4242)
    pred64 = fnet.predict(torch.stack([big[i]["image"] for i in range(60)]))
    assert float((pred64["family"] == table[:60, 0]).double().mean()) >= 0.9


def test_adherence_scores_hand_made():
    names = list(ATTRIBUTES)
    table = torch.full((3, len(names)), -1, dtype=torch.long)
    table[:, names.index("family")] = torch.tensor([0, 2, 3])
    table[:, names.index("colour")] = torch.tensor([3, 3, 3])
    table[0, names.index("count")] = 2
    pred = {k: torch.zeros(3, dtype=torch.long) for k in names}
    pred["family"] = torch.tensor([0, 2, 0])   # the third is wrong
    pred["colour"] = torch.tensor([3, 3, 3])
    pred["count"] = torch.tensor([1, 0, 0])    # only the first has a count, and it is wrong
    s = adherence_scores(pred, table)
    assert s["adherence"] == pytest.approx(2 / 3)
    assert s["adherence_layout"] == pytest.approx(2 / 3)
    assert s["adherence_all"] == pytest.approx(1 / 3)
    assert s["adherence_per_attribute"]["count"] == 0.0
    # a Mondrian grid's two colours count in either order; other families keep theirs
    table = torch.full((2, len(names)), -1, dtype=torch.long)
    table[:, names.index("family")] = torch.tensor([ATTRIBUTES["family"].index("mondrian"), 0])
    table[:, names.index("colour")] = 4
    table[:, names.index("colour2")] = 7
    pred = {k: torch.zeros(2, dtype=torch.long) for k in names}
    pred["family"] = table[:, names.index("family")].clone()
    pred["colour"], pred["colour2"] = torch.tensor([7, 7]), torch.tensor([4, 4])  # both swapped
    s = adherence_scores(pred, table)
    assert s["adherence"] == 0.5 and s["adherence_per_attribute"]["colour"] == 0.5


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text")


@pytest.fixture(scope="module")
def label_model(tmp_path_factory):
    return tiny_model(tmp_path_factory, "label")


def test_evaluate_text_model_reports_everything(text_model):
    r = evaluate(text_model, n=12, steps=3, batch=5)
    for k in KEYS + ("adherence", "adherence_layout", "adherence_all", "adherence_real"):
        assert r[k] is not None, k
    assert r["fd_art"] > 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
    assert 0 <= r["adherence"] <= 1 and r["training_pictures"] == 32  # the tiny model's data_size
    assert r["data"] == "builtin" and r["condition"] == "text"
    again = evaluate(text_model, n=12, steps=3, batch=12)  # the seed fixes everything; the batch does not matter
    for k in KEYS:
        assert again[k] == pytest.approx(r[k], rel=1e-3, abs=1e-4), k


def test_evaluate_label_model_against_a_folder(label_model, tmp_path):
    ds = ProceduralArt(16, size=10, seed=3)
    for i in range(10):
        sub = tmp_path / "pics" / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        ds.render(i).save(sub / f"{i}.png")
    r = evaluate(label_model, data=str(tmp_path / "pics"), n=6, steps=2, batch=6)
    assert r["data"].endswith("pics") and r["training_pictures"] == 10
    assert "adherence" not in r
    for k in KEYS:
        assert r[k] is not None, k


def test_memorization_flags_a_model_that_copies(label_model, monkeypatch):
    """A 'model' whose pictures are training pictures must be reported as copying."""
    import noisebrush.eval.evaluation as ev

    real = ProceduralArt(16, size=32, seed=0)

    def copier(pipe, n, **kw):
        return torch.stack([real[i % 32]["image"] for i in range(n)]), 0.0

    monkeypatch.setattr("noisebrush.eval.evaluation.sample_many", copier)  # the name evaluation uses
    r = ev.evaluate(label_model, n=8, steps=2)
    assert r["near_copy_fraction"] == 1.0


def test_cli_eval_writes_json(text_model, tmp_path, capsys):
    out = tmp_path / "r" / "report.json"
    code = main(["eval", str(text_model), "--n", "8", "--steps", "2", "--batch", "8", "--json", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    for k in KEYS + ("adherence",):
        assert k in doc
    assert "fd_art" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["eval", "no-such-model"], "no-such-model"),
    (["eval", "MODEL", "--n", "2"], "n:"),
    (["eval", "MODEL", "--sampler", "nope"], "nope"),
    (["eval", "MODEL", "--data", "/no/such/folder"], "/no/such/folder"),
])
def test_cli_eval_user_errors(text_model, capsys, argv, fragment):
    argv = [str(text_model) if a == "MODEL" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "Traceback" not in err[0]


def test_small_n_and_negative_kid_are_explained(label_model, monkeypatch):
    """Issue 12 point 13: `eval --n 8` gave numbers without a word on how little they mean."""
    import noisebrush.eval.evaluation as ev
    from noisebrush.errors import NoisebrushWarning

    assert ev.small_n_note(256) is None and ev.small_n_note(1000) is None
    assert "--n 255: below 256 pictures fd_art is biased upward" in ev.small_n_note(255)
    assert ev.negative_kid_note(0.01, 8) is None and ev.negative_kid_note(None, 8) is None
    assert ev.negative_kid_note(-0.002, 8).startswith("kid -0.002 is below 0: the unbiased estimator")
    monkeypatch.setattr("noisebrush.eval.evaluation.kid", lambda a, b: -0.004)  # what tiny n can give
    with pytest.warns(NoisebrushWarning) as seen:
        r = ev.evaluate(label_model, n=8, steps=2, memorization=False)
    lines = [str(w.message) for w in seen if w.category is NoisebrushWarning]
    assert lines == r["notes"] and len(lines) == 2
    assert lines[0].startswith("--n 8: below 256 pictures") and lines[1].startswith("kid -0.004 is below 0")
    assert all("\n" not in line for line in lines)


# ------------------------------------------------------------------------------------------------------------------
# prompt sets (issue 13: `eval --prompts FILE.tsv`)
# ------------------------------------------------------------------------------------------------------------------

PROMPT_FILE = ("prompt\tattributes\n"
               "a wee scarlet orb, leftmost, against a navy wall\tfamily=shapes;colour=red;colour2=blue;shape=circle;"
               "size=small;count=one;position=left\n"
               "a de stijl composition in lime and gold\tfamily=mondrian;colour=green;colour2=yellow\n"
               "a golden solar orb above plum summits\tfamily=landscape;colour=yellow;colour2=purple;sky=day;"
               "ground=mountains\n")


class _Reader:
    """A stand-in feature network that reads back, picture by picture, the rows it is given (in painting order)."""

    dim = 256

    def __init__(self, rows):
        self.rows, self.at = rows, 0

    def predict(self, images):
        rows = self.rows[self.at:self.at + len(images)]
        self.at += len(images)
        return {name: torch.tensor([r[j] for r in rows]) for j, name in enumerate(ATTRIBUTES)}


def test_prompt_set_is_scored_per_prompt(text_model, tmp_path):
    """Each prompt painted per_prompt times, the scores those of adherence_scores over all pictures, the worst prompt
    named with what was read instead."""
    from noisebrush.eval.evaluation import PROMPTS_NOTE
    from noisebrush.eval.prompts import read_prompts

    path = tmp_path / "mine.tsv"
    path.write_text(PROMPT_FILE, encoding="utf-8")
    items = read_prompts(path)
    names = list(ATTRIBUTES)
    truth = [[max(v, 0) for v in it.attr_indices()] for it in items for _ in range(2)]
    read = [list(r) for r in truth]
    read[1][names.index("shape")] = ATTRIBUTES["shape"].index("square")   # the orb's second picture: a square
    read[4][names.index("sky")] = ATTRIBUTES["sky"].index("night")        # the landscape's first: night
    read[5][names.index("sky")] = ATTRIBUTES["sky"].index("night")        # … and its second
    read[0][names.index("size")] = ATTRIBUTES["size"].index("large")      # a layout miss on the orb's first
    r = evaluate(text_model, prompts=path, per_prompt=2, steps=2, batch=4, feature_net=_Reader(read))
    assert r["n"] == 6 and r["prompt_count"] == 3 and r["per_prompt"] == 2 and r["prompts"] == str(path)
    table = torch.tensor([it.attr_indices() for it in items for _ in range(2)])
    pred = {name: torch.tensor([row[j] for row in read]) for j, name in enumerate(names)}
    want = adherence_scores(pred, table)
    assert r["adherence"] == pytest.approx(want["adherence"]) == pytest.approx(3 / 6)
    assert r["adherence_all"] == pytest.approx(2 / 6) and r["adherence_layout"] == pytest.approx(5 / 6)
    assert r["adherence_per_attribute"]["shape"] == 0.5 and r["adherence_per_attribute"]["sky"] == 0.0
    assert r["adherence_per_attribute"]["position"] == 1.0
    assert r["adherence_per_family"] == {"shapes": 0.5, "mondrian": 1.0, "landscape": 0.0}
    worst = r["worst"]
    assert [w["line"] for w in worst] == [4, 2]  # the mondrian prompt adhered: not listed
    assert worst[0]["read_instead"] == {"sky": "night"} and worst[0]["adherence"] == 0.0
    assert worst[1]["read_instead"] == {"shape": "square", "size": "large"} and worst[1]["adherence_all"] == 0.0
    assert r["notes"] == [PROMPTS_NOTE]
    for k in KEYS + ("adherence_real",):
        assert k not in r, k
    json.dumps(r, allow_nan=False)  # no NaN for attributes no prompt names (count, sky of the others …)


def test_prompt_set_paints_the_same_whatever_the_batch(text_model, tmp_path):
    from noisebrush.errors import NoisebrushWarning

    path = tmp_path / "mine.tsv"
    long = "a " + " ".join(["very"] * 30) + " wee scarlet orb"
    path.write_text(PROMPT_FILE + f"{long}\tfamily=shapes;colour=red\n", encoding="utf-8")
    with pytest.warns(NoisebrushWarning) as seen:
        a = evaluate(text_model, prompts=path, steps=2, batch=3)
    cut = [str(w.message) for w in seen if "word pieces" in str(w.message)]
    assert cut == [f"prompts: 1 of 4 have more than the 14 word pieces the model reads and are cut (the first: "
                   f"{path} line 5)"]
    with pytest.warns(NoisebrushWarning, match="word pieces"):
        b = evaluate(text_model, prompts=path, steps=2, batch=4)
    assert a["n"] == 4 and a["per_prompt"] == 1
    for k in ("adherence", "adherence_layout", "adherence_all"):
        assert a[k] == b[k], k


def test_prompt_set_options_are_checked_first(text_model, label_model, tmp_path):
    from noisebrush.errors import BadParameter, UserError
    from noisebrush.eval.evaluation import MAX_PICTURES

    path = tmp_path / "mine.tsv"
    path.write_text(PROMPT_FILE, encoding="utf-8")
    bad = tmp_path / "bad.tsv"
    bad.write_text("prompt\tattributes\na red ball\tcolour=cherry\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv line 2: colour='cherry'"):
        evaluate("no-such-model", prompts=bad)  # the file is read before the model is looked for
    cases = [(dict(model=label_model, prompts=path), "prompts: this model takes class labels, not text"),
             (dict(model=text_model, prompts=path, n=10), "n: not used with a prompt set"),
             (dict(model=text_model, prompts=path, data="builtin"), "data: not used with a prompt set"),
             (dict(model=text_model, per_prompt=2), "per_prompt: only with a prompt set"),
             (dict(model=text_model, prompts=path, per_prompt=0), "per_prompt: a whole number from 1 to 10000"),
             (dict(model=text_model, prompts=[("a red ball", "colour=red")] * 11, per_prompt=10_000),
              f"per_prompt: 10000 × 11 prompts is 110000 pictures; at most {MAX_PICTURES}"),
             # the plain evaluation's --n had no upper bound (issue 12 bounds every count)
             (dict(model=text_model, n=MAX_PICTURES + 1), f"n: a whole number from 4 to {MAX_PICTURES}")]
    for kw, fragment in cases:
        with pytest.raises(BadParameter) as e:
            evaluate(kw.pop("model"), steps=2, **kw)
        assert str(e.value).startswith(fragment), (str(e.value), fragment)


def test_cli_eval_prompts(text_model, tmp_path, capsys):
    from _cli_checks import one_error_line, run_cli

    path = tmp_path / "mine.tsv"
    path.write_text(PROMPT_FILE, encoding="utf-8")
    out = tmp_path / "r.json"
    code, stdout, err = run_cli(capsys, "eval", text_model, "--prompts", path, "--per-prompt", "2", "--steps", "2",
                                "--json", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["n"] == 6 and doc["prompt_count"] == 3 and "adherence_all" in doc and "fd_art" not in doc
    flat = " ".join(stdout.split())
    assert f"on {path} (3 prompts × 2 = 6 pictures" in flat and "--prompts reports adherence only" in flat
    for argv, message in [
        (["--prompts", tmp_path / "none.tsv"], f"error: {tmp_path / 'none.tsv'}: no such prompt file (--prompts)"),
        (["--prompts", path, "--n", "10"], "error: --n: not used with a prompt set"),
        (["--prompts", path, "--data", "builtin"], "error: --data: not used with a prompt set"),
        (["--per-prompt", "2"], "error: --per-prompt: only with a prompt set"),
        (["--prompts", path, "--per-prompt", "0"], "error: --per-prompt: a whole number from 1 to 10000, got 0"),
    ]:
        line = one_error_line(*run_cli(capsys, "eval", text_model, "--steps", "2", *argv))
        assert line.startswith(message), (line, message)

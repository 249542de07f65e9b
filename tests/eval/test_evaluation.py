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

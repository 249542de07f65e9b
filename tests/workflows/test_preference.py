"""The learned preference: ratings in SQLite, the logistic model, its guide and best-of-N.

Models are tiny (2 training steps; see _model_fixture.py); features come from the shipped feature network.
"""
import sqlite3

import pytest
import torch

from _model_fixture import one_thread, tiny_model
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.images import to_pil
from noisebrush.io.png import save_png
from noisebrush.workflows.preference import (PreferenceGuide, PreferenceModel, RatingStore, best_of, best_seeds,
                                   guide_from_recipe, load_preference)


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEBRUSH_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def _pictures(n, seed=0, size=32):
    """Flat two-colour pictures: the left half warm (red-ish) for even i, cool (blue-ish) for odd i."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, 3, size, size)
    for i in range(n):
        c = torch.tensor([0.8, -0.6, -0.6]) if i % 2 == 0 else torch.tensor([-0.6, -0.4, 0.8])
        x[i] = c[:, None, None] + 0.1 * torch.randn(3, size, size, generator=g)
    return x.clamp(-1, 1)


def _separable(n, d=256, seed=0):
    """Two clouds of non-negative (pooled-ReLU-like) features whose means differ along a random direction."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3 == 0
    direction = torch.randn(d, generator=g, dtype=torch.float64)
    x = 1 + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float64) + 0.15 * torch.where(y, 1.0, -1.0)[:, None] \
        * direction
    return x.clamp_min(0), y


# -- the rating store ---------------------------------------------------------------------------------------------
def test_rate_stores_recipe_features_and_rerating_replaces(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    x = _pictures(2)
    path = save_png(to_pil(x[0]), tmp_path / "a.png", {"prompt": "a red circle", "seed": 3})
    id1 = store.rate(path, up=True)
    assert store.count() == {"up": 1, "down": 0, "total": 1, "stale": 0}
    (r,) = store.ratings()
    assert r["rating"] == 1 and r["recipe"] == {"prompt": "a red circle", "seed": 3}
    assert r["path"] == str(path.resolve()) and len(r["sha256"]) == 64
    # the same pixels as a tensor (and as a PIL image) are the same picture: the rating is replaced
    assert store.rate(x[0], up=False) == id1
    assert store.rate(to_pil(x[0]), up=False) == id1
    (r,) = store.ratings()
    assert r["rating"] == -1 and r["recipe"] == {"prompt": "a red circle", "seed": 3}  # the recipe stays
    store.rate(x[1], up=True, recipe={"prompt": "blue"})
    feats, labels = store.features_and_labels()
    assert feats.shape == (2, 256) and feats.dtype == torch.float64
    assert labels.tolist() == [-1.0, 1.0]
    assert store.count()["total"] == 2
    assert store.clear() == 2 and store.count()["total"] == 0


def test_store_defaults_to_noisebrush_home(tmp_path):
    store = RatingStore()
    assert store.path == tmp_path / "home" / "ratings.sqlite"
    assert store.count()["total"] == 0 and not store.path.exists()  # reading creates nothing


@pytest.mark.parametrize("content", [b"this is not a database" * 100, None])
def test_corrupt_or_foreign_database_is_one_clear_error(tmp_path, content):
    db = tmp_path / "r.sqlite"
    if content is None:  # a SQLite file of something else
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE songs (title TEXT)")
        con.commit()
        con.close()
    else:
        db.write_bytes(content)
    with pytest.raises(UserError, match=str(db)) as e:
        RatingStore(db).rate(_pictures(1)[0], up=True)
    assert "\n" not in str(e.value)
    if content is not None:
        with pytest.raises(UserError, match="not a readable ratings database"):
            RatingStore(db).count()


def test_unreadable_images_are_user_errors(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    with pytest.raises(UserError, match="nope.png: no such file"):
        store.rate(tmp_path / "nope.png", up=True)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(UserError, match="bad.png: not a readable image"):
        store.rate(bad, up=True)
    sheet = save_png(to_pil(_pictures(1)[0]), tmp_path / "sheet.png", {"sheet": {"cols": 2}, "images": [{}, {}]})
    with pytest.raises(UserError, match="contact sheet"):
        store.rate(sheet, up=True)
    with pytest.raises(BadParameter, match="up"):
        store.rate(_pictures(1)[0], up="yes")


# -- the model ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("attributes", [True, False])
def test_model_separates_separable_data(attributes):
    x, y = _separable(80)
    m = PreferenceModel.fit(x[:50], y[:50], attributes=attributes)
    assert m.meta["train_accuracy"] == 1.0
    assert m.meta["n_up"] + m.meta["n_down"] == 50 and m.meta["cv_folds"] == 5
    held = ((m.score_features(x[50:]) > 0) == y[50:]).double().mean()
    assert held >= 0.9, held
    # deterministic: the same data gives the same model
    assert PreferenceModel.fit(x[:50], y[:50], attributes=attributes).hash == m.hash


def test_only_ups_is_one_clear_error(tmp_path):
    x, _ = _separable(5)
    with pytest.raises(UserError, match="at least one picture rated up and one rated down.*5 up and 0 down"):
        PreferenceModel.fit(x, torch.ones(5, dtype=torch.bool))
    store = RatingStore(tmp_path / "r.sqlite")
    with pytest.raises(UserError, match="no ratings"):
        load_preference(store)
    store.rate(_pictures(1)[0], up=True)
    with pytest.raises(UserError, match="1 up and 0 down") as e:
        load_preference(store)
    assert "\n" not in str(e.value)


def test_save_load_round_trip_gives_identical_scores(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    x = _pictures(12)
    for i, img in enumerate(x):
        store.rate(img, up=i % 2 == 0)
    m = load_preference(store)  # fitted and saved under $NOISEBRUSH_HOME/preference/<hash>
    assert m.path == tmp_path / "home" / "preference" / f"{m.hash}.safetensors" and m.path.is_file()
    scores = m.score(x)
    assert (scores[::2] > 0).all() and (scores[1::2] < 0).all()
    for again in (PreferenceModel.load(m.path), PreferenceModel.load(m.hash)):
        assert again.hash == m.hash and again.meta == m.meta
        assert torch.equal(again.score(x), scores)
    other = m.save(tmp_path / "copy.safetensors")
    assert torch.equal(PreferenceModel.load(other).score(x), scores)
    # differentiable scoring agrees with the plain one
    torch.testing.assert_close(m.score(x, grad=True), scores, rtol=1e-5, atol=1e-5)
    other.write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable preference model"):
        PreferenceModel.load(other)
    with pytest.raises(UserError, match="no such preference model"):
        PreferenceModel.load("0123456789")


# -- guidance -----------------------------------------------------------------------------------------------------
@pytest.fixture
def warm_model():
    x = _pictures(10)
    feats = __import__("noisebrush.eval.features", fromlist=["x"]).load_feature_net().features(x)
    return PreferenceModel.fit(feats, torch.arange(10) % 2 == 0)  # likes the warm (even) pictures


def test_guide_gradient_lowers_the_loss(warm_model):
    guide = PreferenceGuide(warm_model, scale=1.0)
    x = _pictures(4)[1::2]  # two cool pictures, which the model dislikes
    sigma = torch.full((2,), 0.5, dtype=torch.float64)
    g = guide.gradient(x, sigma)
    assert g.shape == x.shape
    rms = g.flatten(1).pow(2).mean(1).sqrt()
    not_liked = 1 - warm_model.probability(x)
    torch.testing.assert_close(rms.double(), not_liked, rtol=1e-4, atol=1e-6)  # unit RMS × P(down)
    before = guide.loss(x, sigma)
    after = guide.loss(x - 0.05 * g, sigma)
    assert (after < before).all(), (before, after)
    # the batch does not matter (one picture at a time)
    torch.testing.assert_close(guide.gradient(x[:1], sigma[:1]), g[:1])
    # guided between σ = 40 and 0.5 only; outside, no feature-network pass at all
    w = guide.weight(torch.tensor([80.0, 40.0, 3.0, 0.5, 0.1], dtype=torch.float64))
    assert w.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert not guide.gradient(x, torch.full((2,), 0.1, dtype=torch.float64)).any()
    # the step is smooth (an 8×8 field, upsampled): far less pixel-to-pixel change than the raw gradient's
    with torch.enable_grad():
        xr = x.clone().requires_grad_(True)
        (raw,) = torch.autograd.grad(guide.loss(xr, sigma).sum(), xr)

    def roughness(v):
        return (v[..., 1:] - v[..., :-1]).abs().mean() / v.abs().mean()

    assert roughness(g) < 0.5 * roughness(raw), (roughness(g), roughness(raw))


def test_guide_recipe_finds_the_model_again(warm_model):
    guide = PreferenceGuide(warm_model, scale=0.3)
    rec = guide.recipe()
    assert rec["preference"] == warm_model.hash
    from noisebrush.paint.guides import guidance_recipes

    (entry,) = guidance_recipes([guide])
    assert entry["name"] == "preference" and entry["scale"] == 0.3
    again = guide_from_recipe(entry)
    assert again.model.hash == warm_model.hash and again.scale == 0.3
    with pytest.raises(BadParameter, match="scale"):
        PreferenceGuide(warm_model, scale=-1)


# -- best of N ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    import noisebrush

    return noisebrush.load(tiny_model(tmp_path_factory, "label"), device="cpu")


def test_best_seeds_layout():
    assert best_seeds(10, 2, 3) == [[10, 11, 12], [13, 14, 15]]
    assert best_seeds(5, 3, 1) == [[5], [6], [7]]  # best-of-1 paints what plain painting paints


@pytest.mark.parametrize("guided", [False, True])
def test_best_of_keeps_the_best_and_its_seed_reproduces_it(pipe, warm_model, guided):
    kw = dict(steps=3, label=0, cfg=1.0)
    if guided:
        kw["guidance"] = [PreferenceGuide(warm_model, scale=0.3)]
    images, recipes = best_of(pipe, "", n=2, best_of=3, seed=5, model=warm_model, **kw)
    assert images.shape[0] == 2 and len(recipes) == 2
    cands, _ = pipe.generate("", n=6, seed=5, **kw)
    scores = warm_model.score(cands).reshape(2, 3)
    for i, rec in enumerate(recipes):
        j = int(scores[i].argmax())
        assert rec["seed"] == 5 + 3 * i + j
        assert rec["best_of"]["n"] == 3 and rec["best_of"]["preference"] == warm_model.hash
        assert rec["best_of"]["score"] == pytest.approx(float(scores[i, j]))
        assert torch.equal(images[i], cands[3 * i + j])
        alone, (r,) = pipe.generate("", n=1, seed=rec["seed"], **kw)  # the recipe alone paints it again
        assert torch.equal(alone[0], images[i])
        assert ("guidance" in r) == guided
    with pytest.raises(BadParameter, match="best_of"):
        best_of(pipe, "", n=1, best_of=0, seed=0, model=warm_model, **kw)

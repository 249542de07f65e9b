"""``noisebrush tune`` (noisebrush.workflows.tune): a learned schedule written into the model folder, used by
painting at its sampler and steps, recorded in recipes and replayed exactly; stale files, GANs and bad input."""
import json
import shutil

import pytest
import torch

import noisebrush
from _cli_checks import run_cli
from _model_fixture import one_thread, tiny_model
from noisebrush.errors import BadParameter, NoisebrushWarning, UserError
from noisebrush.paint.recipe import replay
from noisebrush.workflows.tune import tune

SMALL = dict(nfe=4, samples=4, valid=4, teacher_steps=10, iters=3, batch=2)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tuned") / "model"
    shutil.copytree(tiny_model(tmp_path_factory, "label"), folder)
    with one_thread():
        report = tune(folder, **SMALL)
    return folder, report


def test_the_schedule_lands_in_the_folder_and_paint_uses_it(tuned):
    folder, r = tuned
    assert r["file"] == str(folder / "schedules" / "dpmpp_2m-nfe4.json") and r["steps"] == 4
    info = json.loads((folder / "schedules" / "dpmpp_2m-nfe4.json").read_text())["info"]
    assert info["weights_hash"] and info["teacher"] == {"sampler": "dpmpp_2m", "steps": 10}
    assert r["median_after"] <= r["median_before"]  # the best on held-out noise, the start included
    with one_thread():
        pipe = noisebrush.load(folder)
        o = pipe.check("", steps=4, label=0)
        assert o.schedule == "learned" and list(o.sigmas()) == r["sigmas"]
        assert pipe.check("", steps=5, label=0).schedule == "karras"  # other steps: the folder's own schedule
        assert pipe.check("", steps=4, label=0, sigma_max=40.0).schedule == "karras"  # other bounds asked for
        x, recipes = pipe.generate("", steps=4, seed=3, label=1)
        assert recipes[0]["sigmas"] == r["sigmas"]
        again, _ = replay(pipe, recipes[0])
        assert torch.equal(again, x)
        # a recipe keeps its levels even when the folder's file is gone
        (folder / "schedules" / "dpmpp_2m-nfe4.json").rename(folder / "kept.json")
        try:
            plain = noisebrush.load(folder)
            assert plain.check("", steps=4, label=0).schedule == "karras"
            assert torch.equal(replay(plain, recipes[0])[0], x)
        finally:
            (folder / "kept.json").rename(folder / "schedules" / "dpmpp_2m-nfe4.json")


def test_edits_record_the_levels_and_recipes_without_them_replay_on_the_plain_schedule(tuned, tmp_path):
    """A variation or a morph painted with the learned levels records them and replays them; a picture or a
    variation painted before the folder had a learned file (no levels recorded) replays on the folder's own
    schedule, exactly, after the file appeared."""
    from noisebrush.io.images import to_pil

    folder, r = tuned
    plain = tmp_path / "plain"
    shutil.copytree(folder, plain)
    shutil.rmtree(plain / "schedules")
    with one_thread():
        before = noisebrush.load(plain)
        x, recipes = before.generate("", steps=4, seed=5, label=1)
        src = tmp_path / "src.png"
        to_pil(x[0]).save(src)
        v, vary_recipes = before.vary(src, "", steps=4, seed=5, n=1, label=1, strength=0.8)
        assert "sigmas" not in recipes[0] and "sigmas" not in vary_recipes[0]
        shutil.copytree(folder / "schedules", plain / "schedules")  # now `tune` has run on the folder
        after = noisebrush.load(plain)
        assert after.check("", steps=4, label=0).schedule == "learned"
        assert torch.equal(replay(after, recipes[0])[0], x)
        assert torch.equal(replay(after, vary_recipes[0], where="v.png", search=[tmp_path])[0], v)
        tuned_v, tuned_recipes = after.vary(src, "", steps=4, seed=5, n=1, label=1, strength=0.8)
        assert tuned_recipes[0]["sigmas"] == r["sigmas"] and not torch.equal(tuned_v, v)
        assert torch.equal(replay(after, tuned_recipes[0], where="v.png", search=[tmp_path])[0], tuned_v)
        frames, morph_recipe = after.morph("", to_seed=6, seed=5, frames=3, steps=4, label=1)
        assert morph_recipe["sigmas"] == r["sigmas"]


def test_a_schedule_for_other_weights_is_not_used(tuned, tmp_path):
    folder, r = tuned
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    f = other / "schedules" / "dpmpp_2m-nfe4.json"
    data = json.loads(f.read_text())
    data["info"]["weights_hash"] = "0" * 64
    f.write_text(json.dumps(data))
    with one_thread(), pytest.warns(NoisebrushWarning, match="learned for other weights"):
        pipe = noisebrush.load(other)
    assert pipe.check("", steps=4, label=0).schedule == "karras"


def test_default_makes_the_steps_the_folders_own(tuned, tmp_path):
    folder, _ = tuned
    mine = tmp_path / "mine"
    shutil.copytree(folder, mine)
    with one_thread():
        r = tune(mine, set_default=True, **{**SMALL, "iters": 1})
        pipe = noisebrush.load(mine)
    assert r["default"] and pipe.schedule.steps == 4
    o = pipe.check("", label=0)
    assert o.steps == 4 and o.schedule == "learned"
    # RePaint cannot use levels learned for the folder's sampler: inpainting keeps its usual steps
    from noisebrush.paint.edit import REPAINT_STEPS

    source = torch.zeros(1, 3, 16, 16)
    hole = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    hole[..., 4:8, 4:8] = True
    with one_thread():
        _, recipes = pipe.inpaint(source, hole, "", n=1, label=0, jumps=1)
    assert recipes[0]["steps"] == REPAINT_STEPS == 20 and "sigmas" not in recipes[0]


def test_bad_requests(tuned, tmp_path):
    folder, _ = tuned
    with pytest.raises(BadParameter, match="nfe: "):
        tune(folder, nfe=1)
    with pytest.raises(BadParameter, match="sampler: a schedule can be learned for dpmpp_2m, dpmpp_3m"):
        tune(folder, sampler="euler", **{k: v for k, v in SMALL.items()})
    with pytest.raises(UserError, match="no such model folder"):
        tune(tmp_path / "nothing")


def test_the_command(tuned, tmp_path, capsys):
    folder, _ = tuned
    out = tmp_path / "elsewhere.json"
    with one_thread():
        code, stdout, err = run_cli(capsys, "tune", folder, "--nfe", "4", "--samples", "4", "--valid", "4",
                                    "--teacher-steps", "10", "--iters", "1", "--batch", "2", "--out", out)
    assert code == 0, err
    assert "learned dpmpp_2m at 4 evaluations (4 steps)" in stdout and str(out) in stdout
    assert "held-out distance to the teacher" in stdout and out.is_file()
    code, stdout, err = run_cli(capsys, "tune", folder, "--nfe", "1")
    assert code == 2 and err.strip().splitlines() == [err.strip().splitlines()[-1]]
    assert err.strip().startswith("error: --nfe")
    code, stdout, err = run_cli(capsys, "tune", folder, "--default", "--out", out)
    assert code == 2 and err.strip().startswith("error: --default")


def test_the_help_shows_the_workflows_defaults():
    from noisebrush.apps.cli.tune import HELP_DEFAULTS
    from noisebrush.workflows.tune import DEFAULTS

    assert HELP_DEFAULTS == {k: v for k, v in DEFAULTS.items() if k != "lr"}

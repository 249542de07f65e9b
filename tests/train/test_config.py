"""TrainConfig: TOML with overrides, and every bad value a BadParameter that names the option."""
import json
import math

import pytest

from noisebrush.errors import BadParameter, UserError
from noisebrush.train import TrainConfig

TOML = """
data = "builtin"
resolution = 16
steps = 100
lr = 1e-3
betas = [0.8, 0.95]
lr_schedule = "linear"
warmup = 10
out_dir = "runs/x"

[model]
channels = 8
channel_mult = [1, 2]
attn_resolutions = [8]
"""


def _write(tmp_path, text, name="train.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_from_toml_with_overrides(tmp_path):
    path = _write(tmp_path, TOML)
    cfg = TrainConfig.from_toml(path)
    assert (cfg.steps, cfg.lr, cfg.lr_schedule, cfg.warmup, cfg.resolution) == (100, 1e-3, "linear", 10, 16)
    assert cfg.betas == (0.8, 0.95) and isinstance(cfg.betas, tuple)
    assert cfg.model == {"channels": 8, "channel_mult": [1, 2], "attn_resolutions": [8]}
    assert cfg.batch_size == TrainConfig().batch_size  # untouched fields keep their defaults

    cfg = TrainConfig.from_toml(str(path), steps=50, lr=None, seed=7, out_dir="elsewhere")
    assert cfg.steps == 50 and cfg.seed == 7 and cfg.out_dir == "elsewhere"
    assert cfg.lr == 1e-3  # a None override (a flag not given) leaves the file's value


def test_round_trips_through_json():
    cfg = TrainConfig(steps=10, warmup=2, betas=(0.5, 0.6), model={"channels": 8})
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_unknown_key_names_it(tmp_path):
    with pytest.raises(BadParameter, match="stepz"):
        TrainConfig.from_toml(_write(tmp_path, TOML, "ok.toml"), stepz=3)  # an unknown flag
    path = _write(tmp_path, TOML.replace("steps = 100", "steps = 100\nstepz = 3\nbatchsize = 4"))
    with pytest.raises(BadParameter, match="batchsize, stepz") as e:
        TrainConfig.from_toml(path)
    assert str(path) in str(e.value)
    with pytest.raises(BadParameter, match="colour"):
        TrainConfig.from_dict({"colour": "red"})


BAD = [
    ("steps", 0), ("batch_size", 0), ("resolution", 0), ("grad_accum", 0), ("data_size", 0), ("max_tokens", 0),
    ("sample_steps", 0), ("log_every", -1), ("sample_every", -1), ("checkpoint_every", -1), ("keep_last", -1),
    ("warmup", -1), ("warmup", 100), ("warmup", 500), ("condition", "words"), ("mixed_precision", "fp8"),
    ("lr_schedule", "step"), ("crop", "left"), ("cond_drop", 1.0), ("cond_drop", -0.1), ("lr", 0.0), ("lr", -1e-3),
    ("lr", math.nan), ("weight_decay", -0.1), ("l1", -1e-4), ("grad_clip", -1.0),
]


@pytest.mark.parametrize("name, value", BAD)
def test_bad_values(name, value):
    with pytest.raises(BadParameter, match=name):
        TrainConfig(**{"steps": 100, name: value})


def test_batch_not_divisible_by_accumulation():
    with pytest.raises(BadParameter, match="batch_size"):
        TrainConfig(batch_size=10, grad_accum=4)


def test_bad_value_in_a_file_names_file_and_option(tmp_path):
    path = _write(tmp_path, TOML.replace('lr_schedule = "linear"', 'lr_schedule = "stairs"'))
    with pytest.raises(BadParameter, match="lr_schedule") as e:
        TrainConfig.from_toml(path)
    assert str(path) in str(e.value)
    with pytest.raises(BadParameter, match="steps"):
        TrainConfig.from_toml(_write(tmp_path, TOML, "b.toml"), steps=0)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such config file"):
        TrainConfig.from_toml(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", ["steps = ", "[model\nchannels = 8", "steps = 1\nsteps = 2", "lr = 1e-3e"])
def test_bad_toml_is_a_user_error(tmp_path, text):
    with pytest.raises(UserError, match="not valid TOML"):
        TrainConfig.from_toml(_write(tmp_path, text))


@pytest.mark.parametrize("name, value", [("lr", "fast"), ("steps", "ten"), ("cond_drop", "x")])
def test_wrong_types_are_bad_parameters(name, value):
    with pytest.raises(BadParameter, match=name):
        TrainConfig(**{name: value})


@pytest.mark.parametrize("name, value", [("sampler", "no-such-sampler"), ("betas", (0.9,)), ("betas", (1.5, 0.9))])
def test_late_checked_values(name, value):
    with pytest.raises(BadParameter, match=name):
        TrainConfig(**{name: value})


def test_default_warmup_fits_the_run_and_a_given_one_is_kept():
    assert TrainConfig().warmup == 200 and TrainConfig(steps=2000).warmup == 200
    assert TrainConfig(steps=50).warmup == 5 and TrainConfig(steps=5).warmup == 0  # before: refused (200 ≥ steps)
    assert TrainConfig(steps=50, warmup=7).warmup == 7
    assert TrainConfig.from_toml("configs/builtin.toml").warmup == 100  # a config that sets it keeps it
    again = TrainConfig.from_dict(TrainConfig(steps=50).to_dict(), steps=5000)
    assert again.warmup == 5  # recorded as a number: a run's config keeps its meaning
    with pytest.raises(BadParameter, match=r"warmup: 9 steps .*steps = 9"):
        TrainConfig(steps=9, warmup=9)


@pytest.mark.parametrize("model, key", [({"channel_mult": "1,2"}, "model.channel_mult"),
                                        ({"channel_mult": [1, "2"]}, "model.channel_mult"),
                                        ({"channels": [8]}, "model.channels"),
                                        ({"channels": 8.0}, "model.channels"),
                                        ({"out_channels": "3"}, "model.out_channels"),
                                        ({"chanels": 8}, "model.chanels: not a setting")])
def test_network_values_are_typed_before_anything_is_built(model, key):
    with pytest.raises(BadParameter, match=key):
        TrainConfig(model=model)
    TrainConfig(model={"channel_mult": [1, 2], "out_channels": None, "dropout": 0})  # ints are numbers


def test_merge_for_resume():
    from noisebrush.train.config import merge_for_resume

    run = TrainConfig(steps=100, warmup=10, model={"channels": 8}).to_dict()
    merged = merge_for_resume(run, {"steps": 300, "log_every": 5, "lr": 1e-2, "model": {"channels": 8, "dims": 2}})
    assert (merged["steps"], merged["log_every"], merged["warmup"], merged["model"]) == (300, 5, 10, {"channels": 8})
    with pytest.raises(BadParameter, match=r"--lr: the run was trained with 0.01, given 0.5"):
        merge_for_resume(run, {"lr": 0.5}, {"lr": "--lr"})
    with pytest.raises(BadParameter, match=r"model.channels: the run was trained with 8, given 16"):
        merge_for_resume(run, {"model": {"channels": 16}})
    with pytest.raises(BadParameter, match="stepz"):
        merge_for_resume(run, {"stepz": 3})


# -- the super-resolution task --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(task="movie"), "task: one of image, sr, video, shape; got 'movie'"),
    (dict(task="SR"), "task"),
    (dict(task="sr", scale=3), "scale: one of 2, 4; got 3"),
    (dict(task="sr", scale=1), "scale"),
    (dict(task="sr", crop_size=7), "crop_size"),
    (dict(task="sr", scale=4, crop_size=6), "crop_size"),
    (dict(task="sr", crop_size=-2), "crop_size"),
    (dict(task="sr", resolution=16, crop_size=32), "crop_size: 32 is larger"),
    (dict(task="sr", resolution=15), "resolution: 15 is not divisible by the scale 2"),
    (dict(task="sr", resolution=18, scale=4), "resolution: 18 is not divisible by the scale 4"),
    (dict(task="sr", sr_aug_max=-0.1), "sr_aug_max"),
    (dict(task="sr", sr_aug_max=2.5), "sr_aug_max"),
    (dict(task="sr", sr_blur=-1.0), "sr_blur"),
    (dict(task="sr", sr_blur=5.0), "sr_blur"),
    (dict(task="sr", captions="family"), "captions: 'family' is for pictures"),
    (dict(task="sr", scale="2"), "scale"),  # typed like every field
])
def test_superres_settings_are_checked(kw, match):
    with pytest.raises(BadParameter, match=match):
        TrainConfig(**{"steps": 100, **kw})


def test_superres_settings_are_only_read_for_the_sr_task():
    from noisebrush.data.superres import SuperRes

    cfg = TrainConfig(steps=100, task="sr", resolution=32, scale=4, crop_size=16, sr_aug_max=0.3, sr_blur=1.5)
    assert cfg.superres() == SuperRes(scale=4, crop=16, aug_max=0.3, blur_max=1.5)
    assert TrainConfig(steps=100, task="sr", resolution=32).superres() == SuperRes(scale=2, crop=0, aug_max=0.5,
                                                                                   blur_max=0.0)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    TrainConfig(steps=100, task="image", captions="family")  # a picture task may phrase its captions
    TrainConfig(steps=100, task="image", resolution=15, scale=2)  # the sr settings do not concern pictures


# -- a time budget (minutes) ------------------------------------------------------------------------------------------

def test_minutes_instead_of_steps_and_the_defaults_that_follow():
    from noisebrush.train.budget import budget_batch

    cfg = TrainConfig()
    assert (cfg.steps, cfg.minutes, cfg.batch_size, cfg.warmup) == (10_000, None, 64, 200)
    for minutes in (5, 20, 60, 240):
        cfg = TrainConfig(minutes=minutes)
        # no steps (they are planned), the budget's batch, the warmup left to the first plan
        assert (cfg.steps, cfg.minutes, cfg.batch_size, cfg.warmup) == (None, minutes, budget_batch(minutes), None)
        assert isinstance(cfg.minutes, float)
    assert [budget_batch(m) for m in (0.5, 5, 10, 20, 30, 60, 120, 240)] == [8, 8, 8, 16, 16, 32, 32, 64]
    cfg = TrainConfig(minutes=5, batch_size=48, warmup=7)  # given values are kept
    assert (cfg.batch_size, cfg.warmup) == (48, 7)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_minutes_from_a_file(tmp_path):
    cfg = TrainConfig.from_toml(_write(tmp_path, TOML.replace("steps = 100", "minutes = 2.5")))
    assert cfg.minutes == 2.5 and cfg.steps is None and cfg.warmup == 10


@pytest.mark.parametrize("kw, words", [
    (dict(minutes=0), "minutes: a number > 0"), (dict(minutes=-1), "minutes: a number > 0"),
    (dict(minutes=10**6), "≤ 10080"), (dict(minutes=math.inf), "minutes: a finite number"),
    (dict(minutes="5"), "minutes: expected a number or unset"),
    (dict(minutes=5, steps=100), "minutes: a run is planned by steps or by minutes, not both"),
    (dict(minutes=5, progressive=[0.5], resolution=32), "progressive: needs a step count"),
])
def test_bad_budgets_are_one_line(kw, words):
    with pytest.raises(BadParameter) as e:
        TrainConfig(**kw)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_resumed_budget_run_may_change_its_minutes():
    from noisebrush.train.config import merge_for_resume

    run = TrainConfig(minutes=20).to_dict()
    merged = merge_for_resume(run, {"minutes": 60})
    assert merged["minutes"] == 60 and merged["steps"] is None and merged["batch_size"] == 16
    assert TrainConfig.from_dict(merged).batch_size == 16  # the run's batch, not the new budget's
    short = merge_for_resume(TrainConfig(minutes=5).to_dict(), {"minutes": 60})
    assert TrainConfig.from_dict(short).model == {"blocks": 1, "patch": 2, "attn_resolutions": []}  # the run's network


def test_a_short_budget_trains_one_block_per_level_on_patches_without_attention_where_nothing_else_is_asked():
    from noisebrush.train.budget import budget_model

    short = {"blocks": 1, "patch": 2, "attn_resolutions": []}
    assert [budget_model(m) for m in (0.5, 5, 10, 10.5, 60)] == [short] * 3 + [{}] * 2
    assert TrainConfig(minutes=5).model == short
    assert TrainConfig(minutes=5, model={"channels": 32}).model == {"channels": 32, **short}
    assert TrainConfig(minutes=20).model == {} and TrainConfig(steps=100).model == {}
    # what the person chose stays: the blocks, the patches, a network to start from, another task or method
    assert TrainConfig(minutes=5, model={"blocks": 2}).model == {**short, "blocks": 2}
    assert TrainConfig(minutes=5, model={"patch": 1}).model == {**short, "patch": 1}
    assert TrainConfig(minutes=5, model={"attn_resolutions": [8]}).model == {**short, "attn_resolutions": [8]}
    assert TrainConfig(minutes=5, init="builtin").model == {}
    assert TrainConfig(minutes=5, method="ddgan").model == {}
    assert TrainConfig(minutes=5, task="video").model == {}
    # patches only where the folded grid divides the resolution (3 levels: 4 px, on patches 8 px)
    assert TrainConfig(minutes=5, resolution=36).model == {"blocks": 1, "attn_resolutions": []}
    assert TrainConfig(minutes=5, resolution=36, model={"channel_mult": [1, 2]}).model == \
        {"channel_mult": [1, 2], **short}


def test_a_short_budget_takes_a_higher_lr_unless_the_run_names_one():
    from noisebrush.train.budget import budget_lr
    from noisebrush.train.config import METHOD_DEFAULTS, merge_for_resume

    base = METHOD_DEFAULTS["diffusion"]["lr"]
    assert [budget_lr(m) for m in (0.5, 10, 10.5, 60)] == [2e-2, 2e-2, None, None]
    assert TrainConfig(minutes=5).lr == 2e-2
    assert TrainConfig(minutes=5, lr=1e-3).lr == 1e-3
    assert TrainConfig(minutes=20).lr == base and TrainConfig(steps=100).lr == base
    assert TrainConfig(minutes=5, init="builtin").lr == base
    assert TrainConfig(minutes=5, task="video").lr == base
    assert TrainConfig(minutes=5, method="ddgan").lr == METHOD_DEFAULTS["gan"]["lr"]
    # a resumed run keeps the LR it was planned with, whatever the new budget
    assert TrainConfig.from_dict(merge_for_resume(TrainConfig(minutes=5).to_dict(), {"minutes": 60})).lr == 2e-2

"""Fine-tuning a (tiny, text-conditioned) model on a folder: full and LoRA, prior preservation, the CLI, errors."""
import json

import pytest
import torch

from _cli_checks import one_error_line
from _model_fixture import one_thread, reset_accelerate, tiny_model
from noisebrush.bench.finetune import make_style_folder
from noisebrush.errors import BadParameter, UserError
from noisebrush.workflows.finetune import caption_with_token, finetune

QUICK = dict(token="<s>", batch_size=4, memorization_n=3, sample_steps=2)


@pytest.fixture(autouse=True)
def _clean():
    with one_thread():
        yield
    reset_accelerate()  # fine-tuning sets up Accelerate's process-wide state; leave it as other tests expect


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_style_folder(tmp_path_factory.mktemp("style"), n=6, resolution=16)


def test_captions_put_the_token_first():
    assert caption_with_token("three rings", "<s>") == "<s> three rings"
    assert caption_with_token("", "<s>") == "a picture in <s> style"
    assert caption_with_token(" three rings ", None) == "three rings"


def test_full_finetune_lowers_the_loss_and_loads(tiny, folder, tmp_path):
    import noisebrush
    from noisebrush.io.model_folder import weights_hash

    out = tmp_path / "full"
    r = finetune(tiny, folder, out, steps=30, lr=1e-2, **QUICK)
    assert r["mode"] == "full" and r["pictures"] == 6 and r["caption_example"].startswith("<s> ")
    assert r["loss_after"] < 0.95 * r["loss_before"], (r["loss_before"], r["loss_after"])
    assert r["cpu_seconds"] > 0 and r["train_cpu_seconds"] > 0 and r["skipped"] == 0
    m = r["memorization"]
    assert m["pictures_painted"] == 3 and m["training_pictures"] == 6 and 0 <= m["near_copy_fraction"] <= 1
    pipe = noisebrush.load(out)
    prov = pipe.config["provenance"]
    assert prov["base_hash"] == weights_hash(tiny) and prov["token"] == "<s>" and prov["steps"] == 30
    assert pipe.config["unet"] == json.loads((tiny / "config.json").read_text())["unet"]
    images, _ = pipe.generate("<s> three concentric rings", steps=2, seed=0)
    assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()
    json.dumps(r)


def test_lora_finetune_trains_only_adapters_and_merges(tiny, folder, tmp_path):
    import noisebrush
    from noisebrush.nets.lora import apply_loras, read_lora

    out = tmp_path / "style.safetensors"
    r = finetune(tiny, folder, out, lora=True, rank=4, steps=30, lr=0.1, **QUICK)
    assert r["mode"] == "lora" and r["rank"] == 4 and out.is_file() and r["bytes"] == out.stat().st_size
    assert r["loss_after"] < 0.95 * r["loss_before"], (r["loss_before"], r["loss_after"])
    base = noisebrush.load(tiny)
    total = sum(p.numel() for p in base.net.parameters())
    assert 0 < r["params_trained"] < total / 2
    lo = read_lora(out)
    assert lo["meta"]["token"] == "<s>" and json.loads(lo["meta"]["provenance"])["pictures"] == 6
    before, _ = base.generate("<s> three concentric rings", steps=2, seed=0)
    info = apply_loras(base.net, base.config, base.hash, [(out, 1.0)])
    after, _ = base.generate("<s> three concentric rings", steps=2, seed=0)
    assert info[0]["token"] == "<s>" and info[0]["rank"] == 4
    assert not torch.equal(before, after)


def test_prior_preservation_paints_class_pictures(tiny, folder, tmp_path):
    r = finetune(tiny, folder, tmp_path / "pp.safetensors", lora=True, steps=2, prior_preservation=True,
                 prior_images=3, class_prompt="concentric rings", prior_weight=0.5, **QUICK)
    assert r["prior_preservation"] == {"pictures": 3, "weight": 0.5, "class_prompt": "concentric rings"}
    r = finetune(tiny, folder, tmp_path / "pp-full", steps=2, prior_preservation=True, prior_images=2,
                 **{**QUICK, "memorization_n": 0})
    assert r["prior_preservation"]["pictures"] == 2 and r["memorization"] is None


def test_bad_inputs_are_one_line_errors(tiny, folder, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    (tmp_path / "taken.safetensors").write_text("x")
    cases = [
        (dict(data=tmp_path / "nowhere", out=tmp_path / "a"), UserError, "not found"),
        (dict(data=tmp_path / "taken", out=tmp_path / "a"), UserError, "no images"),
        (dict(data=folder, out=tmp_path / "taken"), UserError, "exists"),
        (dict(data=folder, out=tmp_path / "taken.safetensors", lora=True), UserError, "exists"),
        (dict(data=folder, out=tmp_path / "x.bin", lora=True), BadParameter, "--out"),
        (dict(data=folder, out=tmp_path / "a", steps=0), BadParameter, "--steps"),
        (dict(data=folder, out=tmp_path / "a", lr=-1.0), BadParameter, "--lr"),
        (dict(data=folder, out=tmp_path / "a.safetensors", lora=True, rank=0), BadParameter, "--rank"),
        (dict(data=folder, out=tmp_path / "a", class_prompt="x"), BadParameter, "--class-prompt"),
        (dict(data=folder, out=tmp_path / "a", token=" "), BadParameter, "--token"),
        (dict(data=None, out=tmp_path / "a"), BadParameter, "--data"),
    ]
    for kw, kind, words in cases:
        with pytest.raises(kind) as e:
            finetune(tiny, **{"steps": 1, **kw})
        assert words in str(e.value) and "\n" not in str(e.value), (kw, str(e.value))
    assert not (tmp_path / "a").exists()


def test_label_models_are_refused(tmp_path_factory, folder, tmp_path):
    label = tiny_model(tmp_path_factory, "label")
    with pytest.raises(UserError, match="class-label"):
        finetune(label, folder, tmp_path / "a", steps=1)


def test_gan_models_are_refused_with_the_way_to_train_them(folder, tmp_path):
    from _model_fixture import TINY_NET, train_tiny

    with one_thread():
        gan = train_tiny(tmp_path / "gan", "none", steps=1, method="ddgan",
                         disc=dict(channels=8, channel_mult=[1, 2, 2]), model=dict(TINY_NET))
    with pytest.raises(UserError, match="a ddgan model; fine-tuning trains diffusion models .* --method ddgan"):
        finetune(gan, folder, tmp_path / "a", steps=1)


def test_cli_finetune_end_to_end(tiny, folder, tmp_path, capsys):
    import noisebrush.apps.cli.finetune  # noqa: F401 - registers the command on the app
    from noisebrush.apps.cli import main

    out = tmp_path / "cli.safetensors"
    code = main(["finetune", "--base", str(tiny), "--data", str(folder), "--out", str(out), "--lora", "--rank", "2",
                 "--token", "<s>", "--steps", "2", "--batch-size", "2", "--prior-preservation",
                 "--class-prompt", "rings"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file()
    assert str(out) in captured.out and "memorization check" in captured.out and "--lora" in captured.out
    assert "CPU time" in captured.out

    # paint with it — twice over, at two weights — and the PNG repaints exactly, LoRAs included
    code = main(["paint", "<s> rings", "--model", str(tiny), "-n", "1", "--steps", "3", "--lora", f"{out}:0.7",
                 "--lora", str(out), "--out", str(tmp_path / "p"), "--seed", "0"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (png,) = (tmp_path / "p").glob("*.png")
    from noisebrush.io.png import read_recipe

    rec = read_recipe(png)
    assert [d["weight"] for d in rec["lora"]] == [0.7, 1.0] and rec["lora"][0]["file"] == str(out.resolve())
    assert main(["reproduce", str(png), "--out", str(tmp_path / "again")]) == 0
    assert "pixel-identical" in capsys.readouterr().out
    plain = tmp_path / "plain"
    assert main(["paint", "<s> rings", "--model", str(tiny), "-n", "1", "--steps", "3", "--out", str(plain), "--seed", "0"]) == 0
    capsys.readouterr()
    from PIL import Image
    import numpy as np

    with Image.open(png) as a, Image.open(next(plain.glob("*.png"))) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))  # the adapters changed the painting
    code = main(["paint", "x", "--model", str(tiny), "--lora", str(tmp_path / "none.safetensors")])
    captured = capsys.readouterr()
    assert "none.safetensors" in one_error_line(code, captured.out, captured.err)
    out.rename(tmp_path / "moved.safetensors")  # the recipe's LoRA is gone: one line says so
    code = main(["reproduce", str(png), "--out", str(tmp_path / "again2")])
    captured = capsys.readouterr()
    assert "not there any more" in one_error_line(code, captured.out, captured.err)

    code = main(["finetune", "--base", str(tiny), "--data", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "m")])
    captured = capsys.readouterr()
    assert "not found" in one_error_line(code, captured.out, captured.err)
    code = main(["finetune", "--base", str(tiny), "--data", str(folder), "--out", str(tmp_path / "m"),
                 "--prior-weight", "2"])
    captured = capsys.readouterr()
    assert "--prior-weight" in one_error_line(code, captured.out, captured.err)

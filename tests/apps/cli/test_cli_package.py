"""The shape of the ``noisebrush.apps.cli`` package: thin command modules on one app, no import loop, a fast start."""
import ast
import subprocess
import sys
from pathlib import Path

import noisebrush.apps.cli as cli

PACKAGE = Path(cli.__file__).parent
COMMAND_MODULES = ["paint", "edit", "animate", "sculpt", "upscale", "export", "tune", "info", "eval", "train",
                   "explain", "finetune", "prefs", "studio"]


def test_command_modules_never_import_the_package():
    """They import `app` from app.py (and helpers from common.py), never from the package that imports them."""
    for path in PACKAGE.glob("*.py"):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "noisebrush.apps.cli":
                raise AssertionError(f"{path.name} imports from noisebrush.apps.cli itself")
            if isinstance(node, ast.Import):
                assert all(a.name != "noisebrush.apps.cli" for a in node.names), path.name


def test_every_command_is_registered_in_help_order():
    names = [c.name or c.callback.__name__.replace("_", "-") for c in cli.app.registered_commands]
    assert names == ["paint", "vary", "inpaint", "outpaint", "morph", "animate", "sculpt", "upscale", "export", "tune",
                     "info",
                     "reproduce",
                     "samplers", "bench", "eval", "experiment", "train", "explain", "plot-log", "finetune", "rate",
                     "prefs", "studio"]
    for name in COMMAND_MODULES:
        assert (PACKAGE / f"{name}.py").is_file()


def test_importing_the_cli_does_not_import_torch():
    """`noisebrush --help` stays fast (0.3 s rather than 3.5 s) because no command module imports torch at the top."""
    code = "import sys, noisebrush.apps.cli; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_version_and_short_help(capsys):
    """Issue 12 point 13: `noisebrush --version` and `-h` (on the app and on every command)."""
    import noisebrush
    from noisebrush.apps.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"noisebrush {noisebrush.__version__}\n"
    assert main(["-h"]) == 0
    top = capsys.readouterr().out
    assert "Usage: noisebrush" in top and "--version" in top and "-h, --help" in top
    names = [c.name or c.callback.__name__.replace("_", "-") for c in cli.app.registered_commands]
    for name in names:
        if name == "bench":
            continue  # its own usage (below)
        assert main([name, "-h"]) == 0, name
        out = capsys.readouterr().out
        assert out.startswith(f"Usage: noisebrush {name} ") and "-h, --help" in out, (name, out[:200])


def test_bench_usage_names_the_command_it_was_run_as(capsys):
    from noisebrush.apps.cli import main

    for flag in ("-h", "--help"):
        assert main(["bench", flag]) == 0
        assert capsys.readouterr().out.startswith("usage: noisebrush bench {samplers,")
    assert main(["bench", "samplers", "-h"]) == 0
    assert capsys.readouterr().out.startswith("usage: noisebrush bench samplers ")
    out = subprocess.run([sys.executable, "-m", "noisebrush.bench", "--help"], capture_output=True, text=True).stdout
    assert out.startswith("usage: python -m noisebrush.bench {samplers,")

"""Checks shared by the CLI tests (imported as a plain module: tests/ is on sys.path under pytest)."""


def one_error_line(code, out, err):
    """A user error: exit status 2, no traceback, exactly one ``error: …`` line on stderr; returns that line."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def run_cli(capsys, *argv):
    """``noisebrush ARGV`` in this process → (exit code, stdout, stderr); the global torch RNG is left as it was."""
    import torch

    from noisebrush.apps.cli import main

    capsys.readouterr()
    with torch.random.fork_rng(devices=[]):
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err

"""Entry point: ``python -m noisebrush.bench NAME [options]`` (or ``noisebrush bench NAME [options]``, which calls
:func:`main` with its arguments). User errors print one line and exit 2; usage lines name the command as it was
invoked."""
from __future__ import annotations

import importlib
import sys

from noisebrush.bench import common
from noisebrush.errors import UserError

BENCHES = {"samplers": "noisebrush.bench.samplers", "train": "noisebrush.bench.train",
           "quality": "noisebrush.bench.quality", "palette": "noisebrush.bench.palette",
           "inpaint": "noisebrush.bench.inpaint", "finetune": "noisebrush.bench.finetune",
           "preference": "noisebrush.bench.preference",
           "cascade": "noisebrush.bench.cascade", "studio": "noisebrush.bench.studio",
           "video": "noisebrush.bench.video", "shapes": "noisebrush.bench.shapes", "gan": "noisebrush.bench.gan",
           "runtime": "noisebrush.bench.runtime", "gpu": "noisebrush.bench.gpu"}


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Run benchmark ``argv[0]`` with the rest of ``argv``. ``prog``: how usage lines name this entry point;
    default ``python -m noisebrush.bench`` when ``argv`` comes from the command line (None), else ``noisebrush
    bench`` (the CLI's ``bench`` command passes its arguments)."""
    prog = prog or (common.MODULE_PROG if argv is None else "noisebrush bench")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"error: name a benchmark: {', '.join(BENCHES)} (NAME --help for its options)", file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(f"usage: {prog} {{" + ",".join(BENCHES) + "} [options]   (NAME --help for options)")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in BENCHES:
        print(f"error: unknown benchmark {name!r}; choose one of {', '.join(BENCHES)}", file=sys.stderr)
        return 2

    mod = importlib.import_module(BENCHES[name])
    before = common.PROG[0]
    common.PROG[0] = prog
    try:
        return mod.main(rest)
    except SystemExit as e:  # argparse's NAME --help: a status to return, so `noisebrush bench` can pass it on
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        common.PROG[0] = before


if __name__ == "__main__":
    sys.exit(main())

"""Entry point: ``python -m noisebrush.bench NAME [options]``. User errors print one line and exit 2."""
from __future__ import annotations

import importlib
import sys

from noisebrush.errors import UserError

BENCHES = {"samplers": "noisebrush.bench.samplers", "train": "noisebrush.bench.train",
           "quality": "noisebrush.bench.quality", "palette": "noisebrush.bench.palette",
           "inpaint": "noisebrush.bench.inpaint", "finetune": "noisebrush.bench.finetune",
           "preference": "noisebrush.bench.preference"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"error: name a benchmark: {', '.join(BENCHES)} (NAME --help for its options)", file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print("usage: python -m noisebrush.bench {" + ",".join(BENCHES) + "} [options]   (NAME --help for options)")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in BENCHES:
        print(f"error: unknown benchmark {name!r}; choose one of {', '.join(BENCHES)}", file=sys.stderr)
        return 2

    mod = importlib.import_module(BENCHES[name])
    try:
        return mod.main(rest)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``python -m noisebrush`` is the ``noisebrush`` command."""
import sys

from noisebrush.cli import main

sys.exit(main())

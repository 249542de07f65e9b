"""``python -m noisebrush`` is the ``noisebrush`` command."""
import sys

from noisebrush.apps.cli import main

sys.exit(main())

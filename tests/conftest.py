"""tests/ itself is on sys.path, so every test imports the shared helpers (_model_fixture, _cli_checks) by name."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

"""tests/ itself is on sys.path, so every test imports the shared helpers (_model_fixture, _cli_checks) by name.

Under pytest-xdist (``make test`` runs one process per core) each worker uses one torch thread, and says so to
the processes it starts (OMP_NUM_THREADS, which :func:`noisebrush.devices.use_all_cores` respects): two workers of
two threads each on two cores would spend their time waiting for each other."""
import os
import sys
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))

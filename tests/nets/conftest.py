"""Shared by the network tests: one intra-op thread (tiny models) and a fixed global seed."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: intra-op threads only add contention on a busy shared box."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)

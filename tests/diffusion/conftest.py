import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Sampler tests run many small per-sample ops; intra-op threads only add contention on a busy 2-core box."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

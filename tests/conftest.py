import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_configure(config):
    # Two cores: keep intra-op threads at the core count so parallel helpers don't thrash.
    torch.set_num_threads(min(2, torch.get_num_threads()))

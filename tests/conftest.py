import pytest
import torch

from repnext_bench.models.randomize import randomize

__all__ = ["randomize", "rel_err"]  # imported by the tests


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return ((actual - expected).norm() / expected.norm()).item()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device: without one they are skipped, saying why."""
    from repnext_bench.backends.torch_cuda import cuda_problem

    problem = cuda_problem()
    if problem:
        skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {problem}")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))

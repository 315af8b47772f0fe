"""The one input check shared by EP and the certified path: clear errors, never a silent number."""

import numpy as np
import pytest
import torch

from pacbayes.errors import InputError
from pacbayes.evidence import certified_log_evidence, ep_log_evidence, validate_inputs

K = 0.5 * np.eye(4) + 0.5
Y = np.array([1, -1, 1, 1])


@pytest.mark.parametrize(
    "estimator",
    [
        lambda K, y, **kw: ep_log_evidence(K, y, **kw),
        lambda K, y, **kw: certified_log_evidence(K, y, delta_prime=0.1, samples=10, **kw),
    ],
)
@pytest.mark.parametrize(
    "kernel, labels, fragment",
    [
        (np.ones((3, 4)), Y[:3], "square"),
        (np.where(np.eye(4) > 0, np.nan, 0.5), Y, "NaN"),
        (K + np.triu(np.full((4, 4), 0.1), 1), Y, "symmetric"),
        (K, Y[:3], "length 3"),
        (K, np.array([1, 2, 1, 2]), "{-1, +1}"),
        (K, np.array([1, np.nan, 1, 1]), "NaN"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), [1, 1], "smallest eigenvalue -1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_line(estimator, kernel, labels, fragment):
    with pytest.raises(InputError) as err:
        estimator(kernel, labels)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_not_positive_definite_names_eigenvalue_and_jitter():
    singular = np.ones((3, 3)) - np.diag([0.0, 0.0, 1e-3])
    with pytest.raises(InputError, match=r"smallest eigenvalue .*jitter"):
        validate_inputs(singular, [1, 1, 1])
    prior, _, jitter = validate_inputs(singular, [1, 1, 1], jitter=0.01)
    assert jitter == 0.01
    assert torch.allclose(prior, torch.as_tensor(singular) + 0.01 * torch.eye(3, dtype=torch.float64))


def test_labels_in_zero_one_are_mapped_and_torch_input_accepted():
    prior, labels, _ = validate_inputs(torch.as_tensor(K, dtype=torch.float32), torch.tensor([1, 0, 0, 1]))
    assert prior.dtype == torch.float64 and labels.tolist() == [1.0, -1.0, -1.0, 1.0]


@pytest.mark.parametrize("jitter", [-1e-3, float("nan"), "x"])
def test_bad_jitter(jitter):
    with pytest.raises(InputError, match="jitter"):
        validate_inputs(K, Y, jitter=jitter)


def test_missing_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="cuda"):
        ep_log_evidence(K, Y, device="cuda")

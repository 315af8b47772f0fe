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


@pytest.mark.parametrize("proposal", ["ep-cavity", "tilted"])
def test_certified_refuses_an_indefinite_prior_even_with_an_ep_result_of_another_kernel(proposal):
    # the ep-cavity path skips the input's own Cholesky: the proposal's factorisation of Sigma_Q (which has the
    # inertia of Sigma) must still refuse a prior with a negative eigenvalue, with the input check's message
    good = 0.5 * np.eye(4) + 0.5
    ep = ep_log_evidence(good, Y)
    _, vectors = np.linalg.eigh(good)
    indefinite = good - 0.6 * np.outer(vectors[:, 0], vectors[:, 0])  # eigenvalue 0.5 - 0.6 < 0
    with pytest.raises(InputError, match=r"smallest eigenvalue -0\.1.*jitter"):
        certified_log_evidence(indefinite, Y, delta_prime=0.1, samples=10, ep=ep, proposal=proposal)


def test_the_prior_is_the_exact_symmetric_part_across_tiles():
    # (K + K^T) / 2 tile by tile equals the whole-matrix formula bit for bit, on a size that is not a multiple
    # of the tile, with an asymmetry below the tolerance; an infinity far from the first tile is still found
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1100, 40))
    kernel = torch.as_tensor(a @ a.T / 40 + np.eye(1100))
    kernel += 1e-12 * torch.as_tensor(rng.normal(size=(1100, 1100)))
    prior, _, _ = validate_inputs(kernel, np.ones(1100), definite=False)
    assert torch.equal(prior, (kernel + kernel.T) * 0.5)
    kernel[1099, 3] = float("inf")
    with pytest.raises(InputError, match="NaN or infinity"):
        validate_inputs(kernel, np.ones(1100))


def test_ep_without_its_definiteness_check_gives_the_same_result_and_still_refuses_what_fails():
    # check_definite=False (as certify runs EP, the sandwich proving K + jitter I positive definite next): the same
    # numbers on a good kernel; a prior so indefinite that EP's own factorisation fails still gets the input
    # check's one-line InputError, not a ConvergenceError
    checked, deferred = ep_log_evidence(K, Y), ep_log_evidence(K, Y, check_definite=False)
    assert deferred.log_evidence == checked.log_evidence and deferred.history == checked.history
    with pytest.raises(InputError, match=r"smallest eigenvalue -2\.5.*jitter") as err:
        ep_log_evidence(np.array([[1.0, 3.5], [3.5, 1.0]]), [1, -1], check_definite=False)
    assert "\n" not in str(err.value)


def test_an_indefinite_prior_that_ep_accepts_unchecked_is_refused_by_the_sandwich_that_follows():
    # the family's order: EP without the check, then the certified sandwich on the same prior, whose
    # factorisation of Sigma_Q refuses it (EP's number is never reported)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 3))
    kernel = np.exp(-0.5 * ((points[:, None] - points[None]) ** 2).sum(-1))
    values, vectors = np.linalg.eigh(kernel)
    indefinite = kernel - (values[0] + 1e-3) * np.outer(vectors[:, 0], vectors[:, 0])  # smallest eigenvalue -1e-3
    labels = np.array([1, -1, 1, 1, -1, 1])
    ep = ep_log_evidence(indefinite, labels, check_definite=False)
    assert ep.converged and np.isfinite(ep.log_evidence)  # EP alone would report a number for an invalid prior
    with pytest.raises(InputError, match=r"smallest eigenvalue -0\.001.*jitter"):
        certified_log_evidence(indefinite, labels, delta_prime=0.1, samples=10, ep=ep)


@pytest.mark.parametrize(("method", "deferred"), [("all", True), ("ep", False)])
def test_evidence_run_defers_the_definiteness_proof_only_to_a_sandwich_that_follows(monkeypatch, method, deferred):
    # `pacbayes evidence --method all` runs EP then the sandwich on the same prior, as certify does: the binary EP
    # skips its Cholesky there; alone (--method ep) it keeps it. An indefinite prior is refused either way.
    from pacbayes.evidence import label_model, run

    calls = []
    monkeypatch.setattr(label_model, "ep_log_evidence", lambda *a, **kw: calls.append(kw) or ep_log_evidence(*a, **kw))
    options = {"proposal": "ep-cavity", "delta_prime": 0.1, "seed": 0, "samples": 10, "jitter": 0.0, "tol": 1e-8}
    run.run_evidence(K, (Y + 1) // 2, method=method, quiet=True, **options)
    assert calls[0].get("check_definite", True) is not deferred
    indefinite = np.array([[1.0, 1.5, 0.0], [1.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(InputError, match="positive definite|eigenvalue"):
        run.run_evidence(indefinite, np.array([1, 0, 1]), method=method, quiet=True, **options)
    assert label_model.MulticlassLabels(3).ep_options_before_certified() == {}

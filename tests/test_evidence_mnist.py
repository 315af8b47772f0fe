"""ReLU-NNGP kernels on MNIST images against frozen SciPy-Genz references (tests/fixtures)."""

import pathlib

import numpy as np
import pytest

import pacbayes.data
from pacbayes.evidence import certified_log_evidence, ep_log_evidence

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "evidence_mnist_relu.npz"
MNIST = pathlib.Path(pacbayes.data.__file__).parent / "mnist"  # the embedded MNIST test split


def _cases():
    data = np.load(FIXTURE)
    return [
        (int(m), float(v), float(e))
        for m, v, e in zip(data["m"], data["log_evidence"], data["log_error"], strict=False)
    ]


@pytest.fixture(scope="module")
def fixture_data():
    data = np.load(FIXTURE)
    return data["kernel"], data["labels"]


@pytest.mark.parametrize("m, reference, error", _cases())
def test_ep_within_half_a_nat_of_genz(fixture_data, m, reference, error):
    K, y = fixture_data
    result = ep_log_evidence(K[:m, :m], y[:m])
    assert result.converged
    assert abs(result.log_evidence - reference) < 0.5 - error


@pytest.mark.parametrize("m, reference, error", _cases())
def test_certified_sandwich_holds(fixture_data, m, reference, error):
    K, y = fixture_data
    cert = certified_log_evidence(K[:m, :m], y[:m], delta_prime=0.01, samples=2000, seed=0)
    assert cert.lower <= reference - error and reference + error <= cert.upper
    assert abs(cert.log_estimate - reference) < 0.5


def _mnist_kernel(m):
    from pacbayes.data import read_idx
    from pacbayes.kernels.fc import FullyConnectedNNGP

    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")[:m].reshape(m, -1) / 255.0
    y = np.where(read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")[:m] >= 5, 1.0, -1.0)
    return FullyConnectedNNGP(depth=2, activation="relu").matrix(images), y


@pytest.mark.heavy
def test_ep_cavity_lower_bound_within_markov_price_of_ep_at_m_3000():
    # docs/evidence.md: at m = 3,000 the tilted weights have ~2 effective samples and the lower bound
    # sits 7.8 nats below EP; the cavity weights keep thousands and the gap within ln(1/delta') + 1
    K, y = _mnist_kernel(3000)
    ep = ep_log_evidence(K, y)
    cert = certified_log_evidence(K, y, delta_prime=0.01, samples=2000, seed=0, ep=ep)
    assert cert.effective_samples > 500
    assert ep.log_evidence - cert.lower < np.log(100.0) + 1.0
    assert cert.lower <= ep.log_evidence + 5.0 and cert.upper is not None and cert.upper > ep.log_evidence


@pytest.mark.heavy
def test_ep_and_tilted_agree_within_one_nat_at_m_1000():
    K, y = _mnist_kernel(1000)
    ep = ep_log_evidence(K, y)
    cert = certified_log_evidence(K, y, delta_prime=0.01, samples=20_000, seed=0, proposal="tilted")
    assert abs(ep.log_evidence - cert.log_estimate) < 1.0
    assert cert.lower <= ep.log_evidence <= cert.upper

"""The clean-label conversion of a bound on uniformly corrupted labels, against simulation."""

import numpy as np
import pytest

from pacbayes.bounds import clean_distribution_bound


@pytest.mark.parametrize("classes", [2, 3, 10])
@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.7])
def test_clean_label_conversion_inverts_uniform_replacement(classes, fraction):
    rng = np.random.default_rng(0)
    n = 200_000
    truth = rng.integers(0, classes, size=n)
    predictions = np.where(rng.random(n) < 0.15, (truth + 1) % classes, truth)  # a classifier with error 0.15
    replaced = rng.random(n) < fraction
    corrupted = np.where(replaced, rng.integers(0, classes, size=n), truth)
    measured_clean = float(np.mean(predictions != truth))
    measured_corrupted = float(np.mean(predictions != corrupted))
    assert clean_distribution_bound(measured_corrupted, fraction, classes) == pytest.approx(measured_clean, abs=0.01)


def test_clean_label_conversion_closed_forms():
    c = 0.3
    assert clean_distribution_bound(0.1 * (1 - c) + c / 2, c) == pytest.approx(0.1)
    assert clean_distribution_bound(0.9, 1.0) == 1.0
    assert clean_distribution_bound(0.25, 0.5) == 0.0  # exactly at the noise floor c/2

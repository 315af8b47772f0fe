"""pacbayes.seeds: named streams of the run's seed, and the draws of every seeded step that moved onto them.

The pinned numbers are what each step drew before its seeding moved to pacbayes.seeds: a seed must keep
reproducing the results it gave.
"""

import numpy as np
import pytest
import torch

from pacbayes import seeds
from pacbayes.data.dataset import from_arrays
from pacbayes.data.labels import corrupt_labels
from pacbayes.data.subsets import subset_positions
from pacbayes.models import reinitialise


def test_stream_seeds_are_pinned_and_follow_the_documented_recipe():
    pinned = {(0, "projection"): 6849186120570482477, (7, "theta0"): 5428215718639200865}
    pinned[(2**40, "prior-split")] = 169868788020127804
    for (seed, stream), value in pinned.items():
        assert seeds.stream_seed(seed, stream) == value
        words = np.random.SeedSequence([seed, *stream.encode()]).generate_state(2, np.uint64)
        assert value == int(words[0]) >> 1 and 0 <= value < 2**63


def test_streams_are_apart_and_a_generator_is_its_seed():
    assert seeds.stream_seed(0, "a") != seeds.stream_seed(0, "b") != seeds.stream_seed(1, "b")
    first = torch.randn(3, generator=seeds.stream_generator(5, "batches"))
    again = torch.randn(3, generator=torch.Generator().manual_seed(seeds.stream_seed(5, "batches")))
    assert torch.equal(first, again)
    assert np.array_equal(seeds.numpy_rng(3).random(4), np.random.default_rng(3).random(4))


def test_seeded_rng_seeds_the_global_generator_and_restores_it():
    torch.manual_seed(123)
    expected_next = torch.randn(2)
    torch.manual_seed(123)
    with seeds.seeded_rng(4):
        inside = torch.randn(2)
    assert torch.equal(inside, torch.randn(2, generator=torch.Generator().manual_seed(4)))
    assert torch.equal(torch.randn(2), expected_next)  # the caller's stream continues untouched


def _dataset():
    x = np.random.default_rng(0).random((30, 4)).astype(np.float32)
    return from_arrays(x, np.arange(30) % 3, name="s", info={})


def test_data_draws_are_pinned():
    ds = _dataset()
    assert subset_positions(ds, 5, 9).tolist() == [2, 9, 14, 18, 25]
    labels = corrupt_labels(ds, 0.5, 4).labels.tolist()
    assert labels == [0, 1, 2, 1, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 1, 2, 1, 1, 2, 0, 1, 2, 1, 0, 2, 0, 1, 1]


def test_reinitialised_weights_are_pinned():
    torch.manual_seed(0)
    weights = reinitialise(torch.nn.Linear(3, 2), 11).weight.flatten().tolist()[:3]
    assert weights == pytest.approx([-0.40525171160697937, -0.015527104958891869, 0.5607935786247253], abs=0)


def test_subspace_streams_are_pinned():
    from pacbayes.subspace.origin import split_indices
    from pacbayes.subspace.projection import KroneckerProjection

    assert split_indices(20, 0.5, 3)[0].tolist() == [15, 19, 4, 11, 3, 8, 10, 14, 1, 9]
    left = KroneckerProjection(20, 4, 5).left.flatten()[:4].tolist()
    assert left == pytest.approx([-0.45867565274238586, -0.319080650806427, -0.7772246599197388, 0.3539389669895172])

"""Projection, seeded re-initialisation, the subspace wrapper and quantisation."""

import numpy as np
import pytest
import torch
from torch import nn

from pacbayes.errors import InputError
from pacbayes.subspace import SubspaceModel, reinitialise
from pacbayes.subspace.coding import exact_exponent
from pacbayes.subspace.projection import KroneckerProjection, make_projection
from pacbayes.subspace.quantisation import RESOLUTION, assign, kmeans_levels, make_levels, snap_levels, uniform_levels


def small_net():
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))


@pytest.mark.parametrize("n_params, dim", [(1000, 37), (64, 64), (5000, 1), (999, 100)])
def test_kronecker_projection_equals_the_dense_kronecker_product(n_params, dim):
    projection = KroneckerProjection(n_params, dim, seed=4)
    left, right = projection.left.double(), projection.right.double()
    dense = torch.from_numpy(np.kron(left.numpy(), right.numpy()))[:n_params, :dim]
    z = torch.randn(dim, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(projection(z).double(), dense @ z.double(), atol=1e-5)
    assert torch.allclose(projection.dense().double(), dense, atol=1e-6)


def test_projection_columns_have_unit_norm_and_depend_only_on_the_seed():
    projection = KroneckerProjection(36 * 49, 36, seed=2)  # D1 D2 = D exactly: no truncation
    assert projection.rows1 * projection.rows2 == 36 * 49
    assert torch.allclose(projection.dense().norm(dim=0), torch.ones(36), atol=1e-5)
    again, other = KroneckerProjection(36 * 49, 36, seed=2), KroneckerProjection(36 * 49, 36, seed=3)
    assert torch.equal(projection.dense(), again.dense())
    assert not torch.equal(projection.dense(), other.dense())


def test_projection_refuses_bad_sizes():
    with pytest.raises(InputError):
        KroneckerProjection(10, 11, seed=0)
    with pytest.raises(InputError):
        make_projection("fastfood", 100, 10, seed=0)


def test_theta0_never_depends_on_the_weights_it_is_given():
    trained = small_net()
    with torch.no_grad():
        for p in trained.parameters():
            p.fill_(0.123)
    fresh = small_net()
    a, b = SubspaceModel(trained, dim=10, seed=7), SubspaceModel(fresh, dim=10, seed=7)
    assert torch.equal(a.theta0, b.theta0)
    assert not torch.any(a.theta0 == 0.123)
    assert not torch.equal(a.theta0, SubspaceModel(fresh, dim=10, seed=8).theta0)


def test_reinitialise_leaves_the_global_rng_alone():
    net = small_net()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    reinitialise(net, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_models_that_cannot_be_coded_are_refused():
    with pytest.raises(InputError, match="BatchNorm"):
        SubspaceModel(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), dim=2, seed=0)

    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

    with pytest.raises(InputError, match="reset_parameters"):
        SubspaceModel(Bare(), dim=2, seed=0)
    with pytest.raises(InputError):
        SubspaceModel(small_net(), dim=0, seed=0)


def test_forward_is_the_base_network_at_theta0_plus_pz():
    model = SubspaceModel(small_net(), dim=12, seed=0)
    x = torch.randn(5, 1, 6, 6)
    z = torch.randn(12)
    theta = model.theta0 + model.projection.dense() @ z
    reference = small_net()
    torch.nn.utils.vector_to_parameters(theta, reference.parameters())
    assert torch.allclose(model(x, z=z), reference(x), atol=1e-5)
    assert list(model.parameters()) == [model.z]


def test_gradient_in_z_is_p_transpose_times_gradient_in_theta():
    model = SubspaceModel(small_net(), dim=9, seed=1)
    x = torch.randn(4, 1, 6, 6)
    model(x).sum().backward()
    reference = small_net()
    theta = model.theta0.clone()
    torch.nn.utils.vector_to_parameters(theta, reference.parameters())
    reference(x).sum().backward()
    grad_theta = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    assert torch.allclose(model.z.grad, model.projection.dense().T @ grad_theta, atol=1e-5)


def test_kmeans_finds_well_separated_clusters_and_levels_are_snapped():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(c, 0.01, 200) for c in (-1.0, 0.25, 2.0)])
    levels = kmeans_levels(z, 3)
    assert levels.dtype == np.float32 and np.array_equal(levels, snap_levels(levels))
    assert np.allclose(levels, [-1.0, 0.25, 2.0], atol=0.01)
    symbols = assign(z, levels)
    assert np.array_equal(symbols, np.repeat([0, 1, 2], 200))
    brute = np.array([np.argmin(np.abs(v - levels.astype(np.float64))) for v in z])
    assert np.array_equal(symbols, brute)


def test_uniform_levels_and_bad_quantisation_input():
    assert np.array_equal(uniform_levels([0.0, 1.0, 0.3], 5), np.float32([0, 0.25, 0.5, 0.75, 1.0]))
    with pytest.raises(InputError):
        make_levels([0.0, 1.0], 2, method="lloyd-max")
    with pytest.raises(InputError):
        kmeans_levels([0.0, np.nan], 2)
    with pytest.raises(InputError):
        uniform_levels([0.0, 1e6], 2)


@pytest.mark.parametrize("seed", range(5))
def test_snapping_moves_levels_by_at_most_a_32nd_of_a_gap(seed):
    rng = np.random.default_rng(seed)
    raw = np.sort(rng.normal(0, 10.0 ** rng.uniform(-3, 2), size=int(rng.integers(2, 20))))
    snapped = snap_levels(raw[::-1])
    gap = np.diff(raw).min()
    assert np.all(np.diff(snapped) >= 0)
    assert np.max(np.abs(snapped - raw)) <= gap / (2 * RESOLUTION) * (1 + 1e-6) + 1e-7 * np.abs(raw).max()
    step = 2.0 ** -exact_exponent(snapped)
    assert step <= gap / RESOLUTION
    assert np.array_equal(snap_levels(snapped), snapped)

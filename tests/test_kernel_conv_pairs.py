"""The full-layout convolution rule (every pair of positions) against its definition, entry by entry."""

import itertools

import pytest
import torch

from pacbayes.kernels.rules import Conv


def _definition(conv: Conv, t: torch.Tensor) -> torch.Tensor:
    """(1/|window|) sum_o t[s q + dil o - lo, s q' + dil o - lo] (1-d), 0 outside the input: loops over everything."""
    (k,), (s,), ((lo, _),), (dil,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    size = t.shape[-1]
    (out,) = conv.output_size((size,))
    result = torch.zeros((*t.shape[:-2], out, out), dtype=torch.float64)
    for q, r, o in itertools.product(range(out), range(out), range(k)):
        i, j = s * q + dil * o - lo, s * r + dil * o - lo
        if 0 <= i < size and 0 <= j < size:
            result[..., q, r] += t[..., i, j] / k
    return result


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation",
    [(3, 1, (1, 1), 1), (3, 2, (1, 1), 1), (2, 1, (0, 1), 1), (3, 1, (2, 0), 2), (4, 3, (0, 0), 1), (5, 2, (3, 1), 1)],
)
def test_full_layout_window_sums_match_their_definition(kernel, stride, padding, dilation):
    conv = Conv(1.0, 0.0, (kernel,), (stride,), (padding,), (dilation,))
    t = torch.randn((2, 3, 9, 9), generator=torch.Generator().manual_seed(kernel + stride), dtype=torch.float64)
    torch.testing.assert_close(conv._window_mean_pairs(t.clone()), _definition(conv, t), rtol=1e-13, atol=1e-13)


def test_two_axes_are_the_product_of_one_axis_sums():
    """A 2-d window on a separable covariance t[p, p'] = a[h, h'] b[w, w'] gives the product of 1-d results."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn((7, 7), generator=generator, dtype=torch.float64) for _ in range(2))
    t = torch.einsum("hk,wl->hwkl", a, b)[None]  # (1, H, W, H', W')
    two = Conv(1.0, 0.0, (3, 2), (2, 1), ((1, 1), (0, 1)), (1, 2))._window_mean_pairs(t.clone())
    rows = _definition(Conv(1.0, 0.0, (3,), (2,), ((1, 1),), (1,)), a)
    columns = _definition(Conv(1.0, 0.0, (2,), (1,), ((0, 1),), (2,)), b)
    torch.testing.assert_close(two[0], torch.einsum("hk,wl->hwkl", rows, columns), rtol=1e-13, atol=1e-13)

"""examples/simplicity_bias.py: LZ76, exact perceptron volumes and formula sizes against independent checks."""

import itertools
import math

import numpy as np
import pytest
from scripts import load_script

sb = load_script("examples/simplicity_bias.py")


def lz76_by_definition(s: str) -> int:
    """Exhaustive-history parsing read straight off Lempel & Ziv (1976): a word grows while it is a
    substring of everything before its last symbol."""
    words, i = 0, 0
    while i < len(s):
        length = 1
        while i + length <= len(s) and s[i : i + length] in s[: i + length - 1]:
            length += 1
        words += 1
        i += length
    return words


def test_lz76_matches_the_definition_and_the_published_example():
    assert sb.lz76_words("1001111011000010") == 6  # Kaspar & Schuster's worked example: 1/0/01/1110/1100/0010
    for n in range(1, 11):
        for bits in itertools.product("01", repeat=n):
            s = "".join(bits)
            assert sb.lz76_words(s) == lz76_by_definition(s), s


def test_lz_complexity_constants_and_symmetry():
    assert sb.lz_complexity("0" * 16) == sb.lz_complexity("1" * 16) == 4.0
    s = "0110100110010110"
    assert sb.lz_complexity(s) == sb.lz_complexity(s[::-1])
    assert sb.lz_complexity(s) == 4.0 * (sb.lz76_words(s) + sb.lz76_words(s[::-1])) / 2


def test_solid_angle_against_closed_forms():
    assert sb.cone_solid_angle(np.eye(3)) == pytest.approx(4 * math.pi / 8, rel=1e-12)  # an octant
    rng = np.random.default_rng(0)
    for _ in range(20):  # three half-spaces: P(g > 0) for g = N u, trivariate orthant formula
        normals = rng.normal(size=(3, 3))
        corr = normals @ normals.T
        d = np.sqrt(np.diag(corr))
        rho = corr / np.outer(d, d)
        orthant = 1 / 8 + (math.asin(rho[0, 1]) + math.asin(rho[0, 2]) + math.asin(rho[1, 2])) / (4 * math.pi)
        assert sb.cone_solid_angle(normals) / (4 * math.pi) == pytest.approx(orthant, abs=1e-12)


def test_exact_perceptron_probabilities_against_sampling():
    exact = sb.exact_perceptron_probabilities(sigma_w=1.0, sigma_b=1.0)
    assert exact.sum() == pytest.approx(1.0, abs=1e-12)
    assert exact[0b0110] == 0.0 and exact[0b1001] == 0.0  # XOR, XNOR: not linearly separable
    assert exact[0b1111] == pytest.approx(exact[0b0000], rel=1e-12)  # f <-> NOT f symmetry
    assert exact[0b0111] == pytest.approx(exact[0b1000], rel=1e-12)
    samples = 400_000
    sampled = sb.sample_function_counts(2, 0, samples, seed=11) / samples
    sd = np.sqrt(exact * (1 - exact) / samples)
    assert np.all(np.abs(sampled - exact) <= 5 * sd + 1e-12)


@pytest.mark.heavy
def test_four_input_formula_sizes():
    sizes4 = sb.minimal_formula_sizes(4)
    parity4 = sum(1 << i for i in range(16) if bin(i).count("1") % 2)
    assert sizes4[parity4] == 16  # Khrapchenko's n^2 lower bound, tight for n = 4
    assert sizes4[1 << 15] == 4 and sizes4.max() == 16


def test_formula_sizes_known_values_and_bounds():
    sizes3 = sb.minimal_formula_sizes(3)
    parity3 = sum(1 << i for i in range(8) if bin(i).count("1") % 2)
    assert sizes3[parity3] == 10  # three-bit parity: x XOR (y XOR z) needs 10 leaves
    assert sizes3[(1 << 8) - 1 - 1] == 3  # OR of 3 (true on all but 000)
    assert sizes3[0] == sizes3[255] == 0 and (sizes3 == 1).sum() == 6
    inputs = sb.boolean_inputs(3).astype(int)
    for code in range(1, 255):
        ones = [i for i in range(8) if (code >> i) & 1]
        zeros = [i for i in range(8) if not (code >> i) & 1]
        edges = sum(1 for a in ones for b in zeros if np.abs(inputs[a] - inputs[b]).sum() == 1)
        assert sizes3[code] >= edges**2 / (len(ones) * len(zeros)) - 1e-9  # Khrapchenko bound
        assert sizes3[code] <= 3 * min(len(ones), len(zeros))  # minterm DNF / maxterm CNF

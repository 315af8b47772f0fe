"""Prefix-free message coding for quantised subspace vectors: round trips, lengths, Kraft."""

import itertools
import math

import numpy as np
import pytest

from pacbayes.errors import InputError, ModelLoadError
from pacbayes.subspace.coding import (
    EXPONENT_BITS,
    BitReader,
    BitWriter,
    arithmetic_decode,
    arithmetic_encode,
    decode_message,
    elias_delta_decode,
    elias_delta_encode,
    elias_delta_length,
    encode_message,
    kt_code_bits,
    unzigzag,
    zigzag,
)


def bits_of(data: bytes, n: int) -> str:
    return "".join(map(str, np.unpackbits(np.frombuffer(data, np.uint8))[:n]))


def kt_by_product(symbols, levels):
    """-log2 of the KT sequence probability, multiplied out step by step (no lgamma)."""
    counts, bits = [0] * levels, 0.0
    for i, s in enumerate(symbols):
        bits -= math.log2((counts[s] + 0.5) / (i + levels / 2))
        counts[s] += 1
    return bits


def random_codebook(rng, levels, exponent):
    integers = np.sort(rng.integers(-(2**12), 2**12, size=levels))
    return np.ldexp(integers.astype(np.float64), -exponent).astype(np.float32)


@pytest.mark.parametrize(
    "n, code", [(1, "1"), (2, "0100"), (3, "0101"), (4, "01100"), (10, "00100010"), (17, "001010001")]
)
def test_elias_delta_matches_textbook_codewords(n, code):
    writer = BitWriter()
    elias_delta_encode(writer, n)
    assert "".join(map(str, writer.bits)) == code
    assert elias_delta_length(n) == len(code)


def test_elias_delta_round_trips_and_lengths():
    writer = BitWriter()
    values = list(range(1, 600)) + [2**20 + 7, 2**40]
    for n in values:
        elias_delta_encode(writer, n)
    assert len(writer.bits) == sum(elias_delta_length(n) for n in values)
    reader = BitReader(writer.to_bytes(), len(writer.bits))
    assert [elias_delta_decode(reader) for _ in values] == values


def test_zigzag_is_a_bijection_onto_the_naturals():
    assert [zigzag(n) for n in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]
    assert all(unzigzag(zigzag(n)) == n for n in range(-1000, 1000))


@pytest.mark.parametrize(
    "d, levels, concentration", [(1, 1, 1.0), (7, 3, 1.0), (500, 8, 0.3), (1000, 16, 2.0), (2000, 4, 0.05)]
)
def test_message_round_trip(d, levels, concentration):
    rng = np.random.default_rng(d + levels)
    p = rng.dirichlet(np.full(levels, concentration))
    symbols = rng.choice(levels, size=d, p=p).tolist()
    codebook = random_codebook(rng, levels, exponent=int(rng.integers(0, 31)))
    data, n_bits = encode_message(symbols, codebook, d)
    decoded, again = decode_message(data, n_bits, d, levels)
    assert again == symbols
    assert decoded.dtype == np.float32 and np.array_equal(decoded, codebook)


@pytest.mark.parametrize("seed", range(6))
def test_body_length_within_two_bits_of_the_kt_code_length(seed):
    """Arithmetic coding: at most -sum log2 p_KT(s_i | s_<i) + 2 bits."""
    rng = np.random.default_rng(seed)
    d, levels = int(rng.integers(50, 3000)), int(rng.integers(2, 20))
    symbols = rng.choice(levels, size=d, p=rng.dirichlet(np.full(levels, 0.5))).tolist()
    body = arithmetic_encode(symbols, levels)
    ideal = kt_by_product(symbols, levels)
    assert kt_code_bits(symbols, levels) == pytest.approx(ideal, rel=1e-10)
    assert ideal - 1e-9 <= len(body) <= ideal + 2.01
    reader = BitReader(BitWriter().to_bytes(), 0)
    reader.bits = list(body)
    assert arithmetic_decode(reader, d, levels) == symbols


def test_kt_code_is_close_to_the_empirical_entropy():
    """KT regret: within (L - 1)/2 log2 d + L bits of d times the empirical entropy."""
    rng = np.random.default_rng(9)
    d, levels = 2000, 8
    symbols = rng.choice(levels, size=d, p=rng.dirichlet(np.ones(levels)))
    counts = np.bincount(symbols, minlength=levels)
    counts = counts[counts > 0]
    entropy_bits = float(-(counts * np.log2(counts / d)).sum())
    assert entropy_bits <= kt_code_bits(symbols, levels) <= entropy_bits + (levels - 1) / 2 * math.log2(d) + levels


def test_message_length_is_the_sum_of_its_fields():
    rng = np.random.default_rng(3)
    d, levels = 777, 6
    symbols = rng.integers(0, levels, size=d).tolist()
    codebook = np.float32([-1.5, -0.25, 0.0, 0.0, 0.75, 3.0])  # multiples of 2^-2
    data, n_bits = encode_message(symbols, codebook, d)
    integers = [-6, -1, 0, 0, 3, 12]
    header = EXPONENT_BITS + elias_delta_length(zigzag(-6) + 1)
    header += sum(elias_delta_length(b - a + 1) for a, b in zip(integers, integers[1:], strict=False))
    assert n_bits == header + len(arithmetic_encode(symbols, levels))
    assert bits_of(data, EXPONENT_BITS) == "00010"


def test_messages_are_prefix_free_and_satisfy_kraft():
    """All messages for d = 5 coordinates over 3 levels: no codeword is a prefix of another."""
    d, levels = 5, 3
    words = set()
    for codebook in ([0.0, 1.0, 2.0], [-0.5, 0.5, 0.75]):
        for symbols in itertools.product(range(levels), repeat=d):
            data, n_bits = encode_message(list(symbols), np.float32(codebook), d)
            words.add(bits_of(data, n_bits))
    assert len(words) == 2 * levels**d
    ordered = sorted(words)
    assert not any(b.startswith(a) for a, b in zip(ordered, ordered[1:], strict=False))
    assert sum(2.0 ** -len(w) for w in words) <= 1.0


def test_corrupt_messages_are_refused():
    data, n_bits = encode_message([0, 1, 1, 2], np.float32([5, 6, 7]), 4)
    with pytest.raises(ModelLoadError):
        decode_message(data, n_bits - 1, 4, 3)
    with pytest.raises(ModelLoadError):
        decode_message(data, n_bits + 64, 4, 3)
    with pytest.raises(ModelLoadError):
        decode_message(data + b"\x01", n_bits + 8, 4, 3)  # trailing bits that are no part of it
    with pytest.raises(ModelLoadError):
        decode_message(data[:-1] + bytes([data[-1] ^ 1 << (8 - n_bits % 8) % 8]), n_bits, 4, 3)


def test_bad_symbols_and_codebooks_are_refused():
    with pytest.raises(InputError):
        encode_message([0, 3], np.float32([1, 2]), 2)
    with pytest.raises(InputError):
        encode_message([0, 1], np.float32([1, 2]), 3)
    with pytest.raises(InputError):
        encode_message([0, 1], np.float32([2, 1]), 2)  # not sorted
    with pytest.raises(InputError):
        encode_message([0, 1], np.float32([1e-10, 1]), 2)  # 1e-10 is no multiple of 2^-31

"""Prefix-free message coding for quantised subspace vectors: round trips, lengths, Kraft."""

import itertools
import math

import numpy as np
import pytest

from pacbayes.errors import InputError, ModelLoadError
from pacbayes.subspace.coding import (
    BitReader,
    BitWriter,
    arithmetic_decode,
    arithmetic_encode,
    count_width,
    decode_message,
    elias_delta_decode,
    elias_delta_encode,
    elias_delta_length,
    encode_message,
    ideal_code_bits,
)


def bits_of(data: bytes, n: int) -> str:
    return "".join(map(str, np.unpackbits(np.frombuffer(data, np.uint8))[:n]))


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


@pytest.mark.parametrize(
    "d, levels, concentration", [(1, 1, 1.0), (7, 3, 1.0), (500, 8, 0.3), (1000, 16, 2.0), (2000, 4, 0.05)]
)
def test_message_round_trip(d, levels, concentration):
    rng = np.random.default_rng(d + levels)
    p = rng.dirichlet(np.full(levels, concentration))
    symbols = rng.choice(levels, size=d, p=p).tolist()
    patterns = rng.integers(0, 2**16, size=levels).tolist()
    data, n_bits = encode_message(symbols, patterns, d)
    assert decode_message(data, n_bits, d, levels) == (patterns, symbols)


@pytest.mark.parametrize("seed", range(6))
def test_body_length_within_two_bits_of_entropy(seed):
    """Arithmetic coding: at most -sum log2 p + 2 bits (p the empirical level distribution)."""
    rng = np.random.default_rng(seed)
    d, levels = int(rng.integers(50, 3000)), int(rng.integers(2, 20))
    symbols = rng.choice(levels, size=d, p=rng.dirichlet(np.full(levels, 0.5)))
    counts = np.bincount(symbols, minlength=levels).tolist()
    body = arithmetic_encode(symbols.tolist(), counts)
    ideal = -sum(math.log2(counts[s] / d) for s in symbols)  # independent of ideal_code_bits
    assert ideal_code_bits(symbols) == pytest.approx(ideal, rel=1e-12)
    assert ideal - 1e-9 <= len(body) <= ideal + 2.01
    reader = BitReader(BitWriter().to_bytes(), 0)
    reader.bits = list(body)
    assert arithmetic_decode(reader, d, counts) == symbols.tolist()


def test_message_length_is_the_sum_of_its_fields():
    rng = np.random.default_rng(3)
    d, levels = 777, 6
    symbols = rng.integers(0, levels, size=d).tolist()
    data, n_bits = encode_message(symbols, list(range(levels)), d)
    counts = np.bincount(symbols, minlength=levels).tolist()
    body = len(arithmetic_encode(symbols, counts))
    assert n_bits == 16 * levels + levels * count_width(d) + elias_delta_length(body + 1) + body


def test_messages_are_prefix_free_and_satisfy_kraft():
    """All messages for d = 5 coordinates over 3 levels: no codeword is a prefix of another."""
    d, levels = 5, 3
    words = set()
    for symbols in itertools.product(range(levels), repeat=d):
        data, n_bits = encode_message(list(symbols), [0, 1, 2], d)
        words.add(bits_of(data, n_bits))
    assert len(words) == levels**d
    ordered = sorted(words)
    assert not any(b.startswith(a) for a, b in zip(ordered, ordered[1:]))
    assert sum(2.0 ** -len(w) for w in words) <= 1.0


def test_corrupt_messages_are_refused():
    data, n_bits = encode_message([0, 1, 1, 2], [5, 6, 7], 4)
    with pytest.raises(ModelLoadError):
        decode_message(data, n_bits - 1, 4, 3)
    with pytest.raises(ModelLoadError):
        decode_message(data, n_bits + 64, 4, 3)
    with pytest.raises(ModelLoadError):
        decode_message(data, n_bits, 5, 3)


def test_bad_symbols_are_refused():
    with pytest.raises(InputError):
        encode_message([0, 3], [1, 2], 2)
    with pytest.raises(InputError):
        encode_message([0, 1], [1, 2], 3)

"""Exact, prefix-free coding of a quantised subspace vector (torch-free, integer arithmetic only).

The message for a vector of ``d`` symbols over ``L`` levels, given (d, L), is the bit string

    codebook  : L IEEE float16 values, 16 bits each
    counts    : how many of the d symbols take each level, L fields of ceil(log2(d + 1)) bits
    length    : Elias-delta code of (number of body bits + 1)      (Elias 1975, IEEE Trans. IT 21)
    body      : arithmetic code of the d symbols under the static model p_k = count_k / d

Every field is either of a length fixed by (d, L) or self-delimiting, so the set of messages for a
given (d, L) is prefix-free and, by Kraft's inequality, sum_messages 2^-l <= 1: 2^-l is a valid
prior over decoded models (Lotfi et al. 2022, Section 4; Zhou et al. 2019, Section 3).

The body is a binary arithmetic coder with 32-bit integer registers and carry-free "pending bit"
renormalisation (Witten, Neal & Cleary 1987, CACM 30(6); Moffat, Neal & Witten 1998). Its length
exceeds the ideal -sum_i log2 p(s_i) by at most two bits plus the (tiny, integer-rounding) loss of
narrowing a 32-bit interval.
"""

import bisect
from typing import Sequence

import numpy as np

from pacbayes.errors import InputError, ModelLoadError

_PRECISION = 32
_FULL = (1 << _PRECISION) - 1
_HALF = 1 << (_PRECISION - 1)
_QUARTER = 1 << (_PRECISION - 2)
_CODEBOOK_BITS = 16


class BitWriter:
    """Collects bits (0/1 ints) and packs them into bytes, most significant bit first."""

    def __init__(self):
        self.bits: list = []

    def write(self, bit: int) -> None:
        self.bits.append(1 if bit else 0)

    def write_uint(self, value: int, width: int) -> None:
        if value < 0 or value >= (1 << width):
            raise InputError(f"{value} does not fit in {width} bits")
        for shift in range(width - 1, -1, -1):
            self.write((value >> shift) & 1)

    def to_bytes(self) -> bytes:
        return np.packbits(np.array(self.bits, dtype=np.uint8)).tobytes()


class BitReader:
    """Reads bits from bytes; reading past ``n_bits`` is an error unless ``pad`` (then zeros)."""

    def __init__(self, data: bytes, n_bits: int):
        if n_bits > 8 * len(data):
            raise ModelLoadError(
                f"coded message claims {n_bits} bits but holds {8 * len(data)}; the subspace model file is corrupt"
            )
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:n_bits].tolist()
        self.position = 0

    def read(self, pad: bool = False) -> int:
        if self.position >= len(self.bits):
            if pad:
                self.position += 1
                return 0
            raise ModelLoadError("coded message ended early; the subspace model file is corrupt")
        bit = self.bits[self.position]
        self.position += 1
        return bit

    def read_uint(self, width: int) -> int:
        value = 0
        for _ in range(width):
            value = (value << 1) | self.read()
        return value


def elias_delta_encode(writer: BitWriter, n: int) -> None:
    """Elias-delta code of an integer n >= 1: gamma code of its bit length, then its low bits."""
    if n < 1:
        raise InputError(f"Elias-delta codes integers >= 1, got {n}")
    length = n.bit_length()
    width = length.bit_length()
    for _ in range(width - 1):
        writer.write(0)
    writer.write_uint(length, width)
    writer.write_uint(n - (1 << (length - 1)), length - 1)


def elias_delta_decode(reader: BitReader) -> int:
    zeros = 0
    while reader.read() == 0:
        zeros += 1
        if zeros > 64:
            raise ModelLoadError("malformed length field in the coded message")
    length = (1 << zeros) | reader.read_uint(zeros)
    return (1 << (length - 1)) | reader.read_uint(length - 1)


def elias_delta_length(n: int) -> int:
    """Number of bits of the Elias-delta code of n >= 1."""
    length = n.bit_length()
    return length + 2 * (length.bit_length() - 1)


def _cumulative(counts: Sequence[int]) -> list:
    cumulative = [0]
    for count in counts:
        cumulative.append(cumulative[-1] + int(count))
    return cumulative


def arithmetic_encode(symbols: Sequence[int], counts: Sequence[int]) -> list:
    """Arithmetic code (list of bits) of ``symbols`` under the static model p_k = counts[k] / sum."""
    cumulative = _cumulative(counts)
    total = cumulative[-1]
    if not 0 < total <= _QUARTER:
        raise InputError(f"arithmetic coding needs 0 < total count <= 2^{_PRECISION - 2}, got {total}")
    bits: list = []
    low, high, pending = 0, _FULL, 0

    def emit(bit):
        nonlocal pending
        bits.append(bit)
        bits.extend([1 - bit] * pending)
        pending = 0

    for symbol in symbols:
        if counts[symbol] <= 0:
            raise InputError(f"symbol {symbol} has count 0 in the coding model")
        width = high - low + 1
        high = low + width * cumulative[symbol + 1] // total - 1
        low = low + width * cumulative[symbol] // total
        while True:
            if high < _HALF:
                emit(0)
            elif low >= _HALF:
                emit(1)
                low -= _HALF
                high -= _HALF
            elif low >= _QUARTER and high < _HALF + _QUARTER:
                pending += 1
                low -= _QUARTER
                high -= _QUARTER
            else:
                break
            low, high = 2 * low, 2 * high + 1
    pending += 1
    emit(0 if low < _QUARTER else 1)
    return bits


def arithmetic_decode(reader: BitReader, n_symbols: int, counts: Sequence[int]) -> list:
    """Inverse of :func:`arithmetic_encode`: the ``n_symbols`` symbols read from ``reader``."""
    cumulative = _cumulative(counts)
    total = cumulative[-1]
    if not 0 < total <= _QUARTER:
        raise ModelLoadError("the level counts in the coded message are inconsistent")
    low, high, value = 0, _FULL, 0
    for _ in range(_PRECISION):
        value = (value << 1) | reader.read(pad=True)
    symbols = []
    for _ in range(n_symbols):
        width = high - low + 1
        target = ((value - low + 1) * total - 1) // width
        symbol = bisect.bisect_right(cumulative, target) - 1
        if not 0 <= symbol < len(counts):
            raise ModelLoadError("the coded message does not decode; the file is corrupt")
        symbols.append(symbol)
        high = low + width * cumulative[symbol + 1] // total - 1
        low = low + width * cumulative[symbol] // total
        while True:
            if high < _HALF:
                pass
            elif low >= _HALF:
                low -= _HALF
                high -= _HALF
                value -= _HALF
            elif low >= _QUARTER and high < _HALF + _QUARTER:
                low -= _QUARTER
                high -= _QUARTER
                value -= _QUARTER
            else:
                break
            low, high = 2 * low, 2 * high + 1
            value = 2 * value + reader.read(pad=True)
    return symbols


def count_width(d: int) -> int:
    """Bits of one level-count field: counts range over 0..d."""
    return max(1, int(d).bit_length())


def encode_message(symbols: Sequence[int], codebook_float16_bits: Sequence[int], d: int) -> tuple:
    """The full prefix-free message (module docstring) as (bytes, number of bits).

    ``symbols``: d level indices in 0..L-1; ``codebook_float16_bits``: the L levels as the uint16
    bit patterns of their float16 values.
    """
    levels = len(codebook_float16_bits)
    symbols = [int(s) for s in symbols]
    if len(symbols) != d:
        raise InputError(f"expected {d} symbols, got {len(symbols)}")
    if levels < 1 or min(symbols) < 0 or max(symbols) >= levels:
        raise InputError(f"symbols must lie in 0..{levels - 1}")
    counts = np.bincount(symbols, minlength=levels).tolist()
    writer = BitWriter()
    for pattern in codebook_float16_bits:
        writer.write_uint(int(pattern), _CODEBOOK_BITS)
    width = count_width(d)
    for count in counts:
        writer.write_uint(count, width)
    body = arithmetic_encode(symbols, counts)
    elias_delta_encode(writer, len(body) + 1)
    writer.bits.extend(body)
    return writer.to_bytes(), len(writer.bits)


def decode_message(data: bytes, n_bits: int, d: int, levels: int) -> tuple:
    """Inverse of :func:`encode_message`: (codebook float16 bit patterns, symbols).

    Checks that the message is exactly ``n_bits`` long, so the reported code length is the true one.
    """
    reader = BitReader(data, n_bits)
    patterns = [reader.read_uint(_CODEBOOK_BITS) for _ in range(levels)]
    width = count_width(d)
    counts = [reader.read_uint(width) for _ in range(levels)]
    if sum(counts) != d:
        raise ModelLoadError(f"level counts sum to {sum(counts)}, not d = {d}; the file is corrupt")
    body_bits = elias_delta_decode(reader) - 1
    body_start = reader.position
    if body_start + body_bits != n_bits:
        raise ModelLoadError(
            f"coded message has {n_bits} bits but its fields account for {body_start + body_bits}; the file is corrupt"
        )
    body = BitReader(bytes(np.packbits(np.array(reader.bits[body_start:], dtype=np.uint8))), body_bits)
    symbols = arithmetic_decode(body, d, counts)
    return patterns, symbols


def ideal_code_bits(symbols: Sequence[int]) -> float:
    """-sum_i log2 p(s_i) under the empirical distribution of the symbols (the entropy bound)."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64))
    counts = counts[counts > 0]
    n = counts.sum()
    return float(-(counts * np.log2(counts / n)).sum())

"""Exact, prefix-free coding of a quantised subspace vector (torch-free, integer arithmetic only).

The message for a vector of ``d`` symbols over ``L`` levels, given (d, L), is the bit string

    exponent  : e in 0..31, a 5-bit field; the levels are integers times 2^-e
    codebook  : the L non-decreasing levels n_1 <= ... <= n_L (in units of 2^-e) as the Elias-delta
                code of zigzag(n_1) + 1, then the Elias-delta codes of the gaps n_k - n_(k-1) + 1
    body      : arithmetic code of the d symbols under the adaptive Krichevsky-Trofimov model
                p(s_i = k | s_1..s_(i-1)) = (c_k + 1/2) / (i - 1 + L/2), c_k the earlier count of k

(Elias 1975, IEEE Trans. IT 21; Krichevsky & Trofimov 1981, IEEE Trans. IT 27.) The exponent has a
fixed length and each codebook field is self-delimiting; the body is prefix-free for a fixed d
because the final dyadic interval of every codeword lies inside its own, disjoint, coding interval
(see :func:`arithmetic_encode`). So the set of messages for a given (d, L) is prefix-free and, by
Kraft's inequality, sum_messages 2^-l <= 1: 2^-l is a valid prior over decoded models (Lotfi et al.
2022, Section 4; Zhou et al. 2019, Section 3). The adaptive model needs no level counts in the
message: its length is within (L - 1)/2 log2 d + O(L) bits of d times the empirical entropy.

The body is a binary arithmetic coder with 32-bit integer registers and carry-free "pending bit"
renormalisation (Witten, Neal & Cleary 1987, CACM 30(6); Moffat, Neal & Witten 1998). Its length
exceeds the ideal -sum_i log2 p(s_i | s_<i) by at most two bits plus the (tiny, integer-rounding)
loss of narrowing a 32-bit interval.
"""

import math
from collections.abc import Iterator, Sequence

import numpy as np

from pacbayes.errors import InputError, ModelLoadError

_PRECISION = 32
_FULL = (1 << _PRECISION) - 1
_HALF = 1 << (_PRECISION - 1)
_QUARTER = 1 << (_PRECISION - 2)
EXPONENT_BITS = 5
MAX_EXPONENT = (1 << EXPONENT_BITS) - 1


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


def kt_frequencies(symbols: Sequence[int], levels: int) -> Iterator[tuple]:
    """Per symbol, (low, high, total) of its integer frequency range under the KT model (doubled:
    frequency 2 c_k + 1 out of 2 (i - 1) + L)."""
    frequencies = [1] * levels
    total = levels
    for symbol in symbols:
        low = sum(frequencies[:symbol])
        yield low, low + frequencies[symbol], total
        frequencies[symbol] += 2
        total += 2


def kt_code_bits(symbols: Sequence[int], levels: int) -> float:
    """Ideal length -sum_i log2 p(s_i | s_<i) of ``symbols`` under the KT model, in bits."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64), minlength=levels)
    n = int(counts.sum())
    log_probability = (
        math.lgamma(levels / 2)
        - math.lgamma(n + levels / 2)
        + sum(math.lgamma(count + 0.5) - math.lgamma(0.5) for count in counts.tolist())
    )
    return -log_probability / math.log(2.0)


def arithmetic_encode(symbols: Sequence[int], levels: int) -> list:
    """Arithmetic code (list of bits) of ``symbols`` in 0..levels-1 under the KT model.

    Prefix-free for a fixed number of symbols: the interval [low, high] of the sequence always holds
    more than a quarter of the register, every symbol gets a non-empty part of it (total frequency
    <= 2^30), and the final bits name a dyadic interval inside [low, high] (Witten et al. 1987).
    """
    if not 0 < levels + 2 * len(symbols) <= _QUARTER:
        raise InputError(f"arithmetic coding needs 0 < L + 2 d <= 2^{_PRECISION - 2}")
    bits: list = []
    low, high, pending = 0, _FULL, 0

    def emit(bit):
        nonlocal pending
        bits.append(bit)
        bits.extend([1 - bit] * pending)
        pending = 0

    for start, end, total in kt_frequencies(symbols, levels):
        width = high - low + 1
        high = low + width * end // total - 1
        low = low + width * start // total
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


def arithmetic_decode(reader: BitReader, n_symbols: int, levels: int) -> list:
    """Inverse of :func:`arithmetic_encode`: the ``n_symbols`` symbols read from ``reader``."""
    if not 0 < levels + 2 * n_symbols <= _QUARTER:
        raise ModelLoadError("the coded message's sizes are out of range; the file is corrupt")
    low, high, value = 0, _FULL, 0
    for _ in range(_PRECISION):
        value = (value << 1) | reader.read(pad=True)
    frequencies, total, symbols = [1] * levels, levels, []
    for _ in range(n_symbols):
        width = high - low + 1
        target = ((value - low + 1) * total - 1) // width
        symbol, start = 0, 0
        while symbol < levels and start + frequencies[symbol] <= target:
            start += frequencies[symbol]
            symbol += 1
        if symbol == levels:
            raise ModelLoadError("the coded message does not decode; the file is corrupt")
        symbols.append(symbol)
        high = low + width * (start + frequencies[symbol]) // total - 1
        low = low + width * start // total
        frequencies[symbol] += 2
        total += 2
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


def zigzag(n: int) -> int:
    """0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ... (a signed integer as a natural number)."""
    return 2 * n if n >= 0 else -2 * n - 1


def unzigzag(k: int) -> int:
    return k // 2 if k % 2 == 0 else -(k + 1) // 2


def exact_exponent(values) -> int:
    """The smallest e in 0..MAX_EXPONENT with every value an integer multiple of 2^-e."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise InputError("codebook levels must be finite")
    for exponent in range(MAX_EXPONENT + 1):
        scaled = np.ldexp(values, exponent)
        if np.all(scaled == np.round(scaled)):
            return exponent
    raise InputError(f"codebook levels must be multiples of 2^-{MAX_EXPONENT} (see quantisation.snap_levels)")


def grid_values(exponent: int, integers: Sequence[int]) -> np.ndarray:
    """The levels n_k 2^-e as float32 (exact for the codebooks :func:`encode_message` accepts)."""
    return np.ldexp(np.asarray(integers, dtype=np.float64), -int(exponent)).astype(np.float32)


def _write_codebook(writer: BitWriter, codebook) -> None:
    exponent = exact_exponent(codebook)
    integers = [int(n) for n in np.ldexp(np.asarray(codebook, dtype=np.float64), exponent)]
    if grid_values(exponent, integers).tolist() != np.asarray(codebook, dtype=np.float32).tolist():
        raise InputError("codebook levels must be float32 values (see quantisation.snap_levels)")
    if any(b < a for a, b in zip(integers, integers[1:], strict=False)):
        raise InputError("codebook levels must be sorted (non-decreasing)")
    writer.write_uint(exponent, EXPONENT_BITS)
    elias_delta_encode(writer, zigzag(integers[0]) + 1)
    for previous, current in zip(integers, integers[1:], strict=False):
        elias_delta_encode(writer, current - previous + 1)


def _read_codebook(reader: BitReader, levels: int) -> np.ndarray:
    exponent = reader.read_uint(EXPONENT_BITS)
    integers = [unzigzag(elias_delta_decode(reader) - 1)]
    for _ in range(levels - 1):
        integers.append(integers[-1] + elias_delta_decode(reader) - 1)
    return grid_values(exponent, integers)


def encode_message(symbols: Sequence[int], codebook, d: int) -> tuple:
    """The full prefix-free message (module docstring) as (bytes, number of bits).

    ``symbols``: d level indices in 0..L-1; ``codebook``: the L sorted levels, float32 values that
    are integer multiples of 2^-e for some e <= 31 (as :func:`pacbayes.subspace.quantisation.snap_levels`
    makes them).
    """
    codebook = np.asarray(codebook, dtype=np.float64).reshape(-1)
    levels = codebook.size
    symbols = [int(s) for s in symbols]
    if len(symbols) != d:
        raise InputError(f"expected {d} symbols, got {len(symbols)}")
    if levels < 1 or min(symbols) < 0 or max(symbols) >= levels:
        raise InputError(f"symbols must lie in 0..{levels - 1}")
    writer = BitWriter()
    _write_codebook(writer, codebook)
    writer.bits.extend(arithmetic_encode(symbols, levels))
    return writer.to_bytes(), len(writer.bits)


def decode_message(data: bytes, n_bits: int, d: int, levels: int) -> tuple:
    """Inverse of :func:`encode_message`: (float32 codebook, symbols).

    Re-encodes what it decoded and checks that this gives back exactly the ``n_bits`` bits stored,
    so the reported code length is the true one.
    """
    reader = BitReader(data, n_bits)
    codebook = _read_codebook(reader, levels)
    symbols = arithmetic_decode(reader, d, levels)
    again, again_bits = encode_message(symbols, codebook, d)
    if again_bits != n_bits or again != data[: len(again)] or len(data) != len(again):
        raise ModelLoadError(f"the coded message of {n_bits} bits does not re-encode to itself; the file is corrupt")
    return codebook, symbols

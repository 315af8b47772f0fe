"""A subspace model whose coordinates z are quantised and entropy-coded: the hypothesis that the
compression bound certifies is whatever :meth:`CompressedSubspaceModel.decode` rebuilds from the
message, never the continuous z it came from (Lotfi et al. 2022, Section 4)."""

from dataclasses import dataclass

import numpy as np

from pacbayes.subspace.coding import decode_message, encode_message
from pacbayes.subspace.model import SubspaceModel


@dataclass
class CompressedSubspaceModel:
    """The wrapper model (theta0 and P from its seed) plus the coded message for z.

    ``code_bits``: exact message length l; ``configurations``: how many (d, levels, ...) settings
    were tried to produce it (the bound pays ln of it); ``train_error`` / ``train_fingerprint``:
    what the encoder measured, for the decoding check; ``training``: the training settings and
    epochs run, when pacbayes trained it (reported, not part of the message).
    """

    model: SubspaceModel
    levels: int
    message: bytes
    code_bits: int
    configurations: int = 1
    quantisation: str = "kmeans"
    train_error: float | None = None
    train_fingerprint: str | None = None
    training: dict | None = None

    def decoded_z(self) -> np.ndarray:
        """z rebuilt from the message alone (float32, length d)."""
        codebook, symbols = decode_message(self.message, self.code_bits, self.model.dim, self.levels)
        return codebook[np.asarray(symbols, dtype=np.int64)]

    def decode(self) -> SubspaceModel:
        """The wrapper model evaluated at the decoded z (the certified hypothesis)."""
        self.model.set_quantised(self.decoded_z())
        return self.model


def compress(
    model: SubspaceModel, codebook, symbols, *, configurations: int = 1, quantisation: str = "kmeans"
) -> CompressedSubspaceModel:
    """Code z = codebook[symbols] into a :class:`CompressedSubspaceModel`; ``codebook``: sorted levels
    on the grid of :func:`pacbayes.subspace.quantisation.snap_levels` (else InputError)."""
    codebook = np.asarray(codebook)
    message, bits = encode_message(np.asarray(symbols).tolist(), codebook, model.dim)
    return CompressedSubspaceModel(
        model=model,
        levels=int(codebook.size),
        message=message,
        code_bits=bits,
        configurations=int(configurations),
        quantisation=quantisation,
    )

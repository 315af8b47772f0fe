"""Seeded randomness: the one way a seeded step gets its random numbers from the run's seed.

A run has one seed (``--seed``, ``CertifyOptions.seed``). A step that needs random numbers of its own,
apart from every other step's, draws them from a *named stream* of that seed: :func:`stream_seed`
derives a 63-bit child seed from the run's seed and the stream's name (numpy's ``SeedSequence`` over
the seed and the name's bytes), and :func:`stream_generator` seeds a torch generator with it. Streams
with different names are independent, a new stream changes no other stream's numbers, and a name
keeps its numbers as long as it is spelled the same, so each name is part of what a seed reproduces
("projection", "theta0", "prior-split", "batches", "origin" in :mod:`pacbayes.subspace`).

:func:`generator` and :func:`numpy_rng` seed a torch generator or a numpy ``Generator`` with a seed as
given; :func:`seeded_rng` runs a block under torch's global generators seeded, restoring them after
(PyTorch's default initialisers draw from the global generator only).
"""

import contextlib

import numpy as np
import torch


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed (torch's generators take a signed 64-bit one) for the random stream named ``stream`` of
    the run seed ``seed``:
    the first 64-bit word of ``SeedSequence([seed, *stream's UTF-8 bytes])``, shifted right by one bit."""
    words = np.random.SeedSequence([int(seed), *stream.encode()]).generate_state(2, np.uint64)
    return int(words[0] >> np.uint64(1))


def generator(seed: int, device=None) -> torch.Generator:
    """A torch generator on ``device`` (None: the CPU) seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


def stream_generator(seed: int, stream: str, device=None) -> torch.Generator:
    """A torch generator for the random stream named ``stream`` of ``seed`` (:func:`stream_seed`)."""
    return generator(stream_seed(seed, stream), device)


def numpy_rng(seed) -> np.random.Generator:
    """``numpy.random.default_rng(seed)``: numpy's generator for a seed (or a list of ints, a SeedSequence)."""
    return np.random.default_rng(seed)


@contextlib.contextmanager
def seeded_rng(seed: int, cuda: bool = False):
    """Run the block with torch's global CPU generator (and, when ``cuda``, every CUDA device's) seeded with
    ``seed``; the generators' states are restored afterwards."""
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(int(seed))
        if devices:
            torch.cuda.manual_seed_all(int(seed))
        yield


__all__ = ["generator", "numpy_rng", "seeded_rng", "stream_generator", "stream_seed"]

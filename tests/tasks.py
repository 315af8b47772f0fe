"""The small binarised mnist-embedded task a test module hands to the conftest ``data``/``trained`` fixtures."""

from dataclasses import dataclass


@dataclass(frozen=True)
class MnistTask:
    """m training points (binarised, seeded subset), n_test test points, the seed, the demo net's width."""

    m: int
    n_test: int
    seed: int
    width: int

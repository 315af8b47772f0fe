"""Where heavy work runs: the torch device (a clear error when it is missing) and the CPU thread count by size."""

from contextlib import contextmanager

import torch

from pacbayes.errors import InputError


def resolve_device(device=None) -> torch.device:
    """``None`` -> cpu; a string or torch.device is checked to exist on this machine."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"unknown device {device!r}; use cpu or cuda") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda was requested but no CUDA GPU is available; use --device cpu")
    return device


SINGLE_THREAD_BELOW = 768
"""Matrix size below which torch work runs on one intra-op thread (see :func:`threads_for`)."""


@contextmanager
def threads_for(n: int, device=None):
    """Run torch CPU work on n x n matrices with the number of threads that suits its size.

    Below :data:`SINGLE_THREAD_BELOW` an operation takes milliseconds, and splitting it over threads
    costs more than it gains: on a loaded 2-core machine a 200-point kernel took 30 ms median and
    0.63 s worst on 2 threads against 11 ms / 18 ms on 1 (benchmarks/bench_threads.py measures it
    in one run). Larger work keeps torch's thread count. CUDA work is left alone.
    """
    previous = torch.get_num_threads()
    single = int(n) < SINGLE_THREAD_BELOW and resolve_device(device).type == "cpu"
    if single:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if single:
            torch.set_num_threads(previous)

"""Where heavy work runs: the torch device (a clear error when it is missing) and the CPU thread count by size."""

from contextlib import contextmanager

import torch

from pacbayes.errors import InputError


SUPPORTED_DEVICES = ("cpu", "cuda")
"""Device types the heavy work runs on (``meta`` tensors hold no values; ``mps`` lacks float64)."""


def resolve_device(device=None, name: str = "device") -> torch.device:
    """``None`` -> cpu; a string or torch.device must name a supported type that exists on this machine
    (InputError naming ``name`` otherwise)."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InputError(f"unknown {name} {device!r}; use cpu or cuda") from err
    if device.type not in SUPPORTED_DEVICES:
        raise InputError(
            f"{name} {device.type} is not supported: pacbayes computes on cpu or cuda "
            "(meta tensors hold no values, mps has no float64)"
        )
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise InputError(f"{name} cuda was requested but no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= count:
            raise InputError(f"{name} {device} does not exist: this machine has {count} CUDA GPU(s) (cuda:0..)")
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

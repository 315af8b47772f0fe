"""What the benchmarks measure besides seconds: device synchronisation and the process's peak memory."""

import resource

import torch


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer read afterwards includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: torch.device) -> float:
    """Peak memory so far in GiB: allocated CUDA memory, or the process's peak resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux

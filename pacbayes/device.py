"""Where heavy work runs: the torch device (a clear error when it is missing) and the CPU thread count by
size and machine load."""

import math
import os
import statistics
import time
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


def thread_count(cores: int, other_load: float, size: int, available: int) -> int:
    """Intra-op threads for CPU work on ``size`` x ``size`` matrices: one per core that other work leaves
    free (``cores`` usable, ``other_load`` runnable threads of other processes on average), at least
    one, at most ``available`` (torch's setting), and one below :data:`SINGLE_THREAD_BELOW`.

    A parallel region waits for its slowest thread: with other work on the cores a thread is often
    descheduled, and every region stalls for a time slice (on a 2-core machine at load ~9, the ReLUs of a
    Dziugaite-Roy run, on 100 to 5,000 x 512 numbers, took 17 ms each on torch's 2 threads; cProfile).
    ``benchmarks/bench_threads.py --families``
    times the Dziugaite-Roy and subspace families idle and beside a CPU hog, with and without this policy.
    """
    if int(size) < SINGLE_THREAD_BELOW:
        return 1
    free = math.floor(cores - max(0.0, other_load) + 0.5)
    return max(1, min(int(cores), int(available), free))


def _own_load(cores: int) -> float:
    """This process's average number of busy threads since it started (Linux; 1 elsewhere), at most ``cores``."""
    try:
        with open("/proc/self/stat") as stream:
            started = int(stream.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as stream:
            alive = float(stream.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return 1.0
    used = sum(os.times()[:2])
    return min(float(cores), used / alive) if alive > 1.0 else 0.0


def _running_threads(path: str) -> int:
    """Threads of one process in state R (running or runnable) from its ``/proc/<pid>/task`` folder."""
    count = 0
    for task in os.listdir(path):
        with open(os.path.join(path, task, "stat")) as stream:
            count += stream.read().rsplit(")", 1)[1].split()[0] == "R"
    return count


def runnable_now(readings: int = 5, pause: float = 0.01) -> float | None:
    """Runnable threads of other processes right now (Linux): the median over ``readings`` of the running count
    in /proc/loadavg less this process's running threads; None where /proc cannot tell. Unlike the load
    average it does not remember work that ended in the last minute (a previous run would otherwise leave
    the next one on one thread) nor miss work that has just started."""
    counts = []
    for _ in range(readings):
        try:
            with open("/proc/loadavg") as stream:
                running = int(stream.read().split()[3].split("/")[0])
            counts.append(max(0, running - _running_threads("/proc/self/task")))
        except (OSError, ValueError, IndexError):
            return None
        time.sleep(pause)
    return float(statistics.median(counts))


def machine_load() -> tuple:
    """(usable cores, runnable threads of other processes): the cores in this process's affinity mask, and
    :func:`runnable_now`, or where /proc cannot tell, the 1-minute load average less this process's own share."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    now = runnable_now()
    if now is not None:
        return cores, now
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return cores, max(0.0, load - _own_load(cores))


@contextmanager
def threads_for(n: int, device=None):
    """Run torch CPU work on n x n matrices (``n``: the size that sets the cost) with the number of
    threads :func:`thread_count` chooses for its size and the machine's load; torch's setting is
    restored afterwards. CUDA work is left alone.

    Below :data:`SINGLE_THREAD_BELOW` an operation takes milliseconds, and splitting it over threads
    costs more than it gains: on a loaded 2-core machine a 200-point kernel took 30 ms median and
    0.63 s worst on 2 threads against 11 ms / 18 ms on 1 (benchmarks/bench_threads.py measures it
    in one run).
    """
    previous = torch.get_num_threads()
    chosen = previous
    if resolve_device(device).type == "cpu":  # a small size runs on one thread whatever the load: not read then
        cores, other_load = machine_load() if int(n) >= SINGLE_THREAD_BELOW else (1, 0.0)
        chosen = thread_count(cores, other_load, n, previous)
    if chosen != previous:
        torch.set_num_threads(chosen)
    try:
        yield
    finally:
        if chosen != previous:
            torch.set_num_threads(previous)


def threads_for_network(model: torch.nn.Module, device=None):
    """:func:`threads_for` for training or sampling ``model``: a step costs about as much as a product of
    sqrt(P) x sqrt(P) matrices, P the number of parameters (the demo's 665,089: 815)."""
    return threads_for(math.isqrt(sum(p.numel() for p in model.parameters())), device)

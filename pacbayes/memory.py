"""Will it fit? Free memory of a device, and the refusal (with the fix) when a kernel or an estimator will not."""

import os

import torch

try:
    import resource
except ImportError:  # Windows: no address-space limit to honour
    resource = None

from pacbayes.errors import InputError


def free_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes: cudaMemGetInfo for a GPU; for the CPU the smaller of
    MemAvailable of /proc/meminfo (else the physical memory) and what ``ulimit -v`` still lets this
    process map; None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    known = [value for value in (_available_memory(), _address_space_left()) if value is not None]
    return min(known) if known else None


def _available_memory() -> int | None:
    """MemAvailable of /proc/meminfo, else the physical memory, in bytes; None when unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left() -> int | None:
    """Bytes this process may still map under its address-space limit (``ulimit -v``, RLIMIT_AS): the
    soft limit less the current virtual size (/proc/self/statm); None when unlimited or unknown."""
    if resource is None:
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        mapped = 0
    return max(int(soft) - mapped, 0)


def format_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


KERNEL_FIX = "use fewer inputs (a training subset), a smaller block_size, or a device with more memory"


def check_fits(needed: int, device: torch.device, what: str, fix: str = KERNEL_FIX) -> None:
    """InputError, naming ``fix``, when ``needed`` bytes exceed the free memory of ``device`` (no check when
    unknown)."""
    free = free_bytes(device)
    if free is not None and needed > free:
        raise InputError(
            f"{what} needs about {format_bytes(needed)} but only {format_bytes(free)} is free on {device}; {fix}"
        )

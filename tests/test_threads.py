"""The CPU thread policy (pacbayes.device): threads from the work's size, the usable cores and the load of
other processes; torch's setting restored afterwards."""

import os

import pytest
import torch

from pacbayes import device
from pacbayes.device import SINGLE_THREAD_BELOW, thread_count, threads_for, threads_for_network

BIG = SINGLE_THREAD_BELOW


@pytest.mark.parametrize(
    "cores, other_load, size, available, expected",
    [
        (2, 0.0, BIG, 2, 2),  # idle: every core
        (2, 0.4, BIG, 2, 2),  # a little background work rounds away
        (2, 0.6, BIG, 2, 1),  # about one core busy elsewhere
        (2, 2.0, BIG, 2, 1),  # a CPU hog on both cores: one thread, never zero
        (2, 10.0, BIG, 2, 1),
        (16, 3.0, BIG, 16, 13),
        (16, 0.0, BIG, 4, 4),  # never more than torch's setting (OMP_NUM_THREADS, the user's choice)
        (2, 0.0, BIG - 1, 2, 1),  # small work: one thread whatever the machine
        (2, -1.0, BIG, 2, 2),  # a nonsensical negative load counts as none
    ],
)
def test_thread_count(cores, other_load, size, available, expected):
    assert thread_count(cores, other_load, size, available) == expected


def test_threads_for_sets_the_choice_and_restores_torchs(monkeypatch):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(device, "machine_load", lambda: (2, 3.0))
        with threads_for(BIG):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(device, "machine_load", lambda: (2, 0.0))
        with threads_for(BIG):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), threads_for(BIG - 1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("the setting is restored on errors too")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_network_size_is_the_root_of_its_parameter_count(monkeypatch):
    seen = []
    monkeypatch.setattr(device, "threads_for", lambda n, dev=None: seen.append(n))
    threads_for_network(torch.nn.Linear(99, 100))  # 9,900 + 100 parameters
    assert seen == [100]


def test_machine_load_counts_the_affinity_mask_and_leaves_out_this_process(monkeypatch):
    cores, _ = device.machine_load()
    assert cores == len(os.sched_getaffinity(0))
    monkeypatch.setattr(device, "runnable_now", lambda: None)  # where /proc cannot tell: the load average
    monkeypatch.setattr(device.os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    monkeypatch.setattr(device, "_own_load", lambda cores: 1.25)
    assert device.machine_load() == (cores, 2.25)
    monkeypatch.setattr(device, "_own_load", lambda cores: 5.0)
    assert device.machine_load() == (cores, 0.0)


def test_own_load_is_this_process_busy_share():
    assert 0.0 <= device._own_load(2) <= 2.0
    assert device._own_load(0) == 0.0


def test_the_load_read_now_sees_busy_processes_and_not_this_one():
    """Two busy-looping processes are counted while they run; this process's own threads are not."""
    import subprocess
    import sys
    import time

    quiet = device.runnable_now()
    assert quiet is not None and quiet >= 0.0
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        busy = device.runnable_now(readings=9)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert busy >= 1.0

"""Benchmark torch's intra-op threads: by problem size (the choice behind pacbayes.device.threads_for), and
the Dziugaite-Roy and subspace families idle and beside a CPU hog, today's code against this tree's.

    python benchmarks/bench_threads.py [--sizes 200 400 768 1500 3000] [--repeats 30]
    python benchmarks/bench_threads.py --families [--m 1000] [--mc-samples 1000] [--subspace-dim 500]
                                       [--baseline-rev HEAD] [--hogs 2]

Sizes: for each size n, an FC ReLU NNGP kernel of n MNIST images followed by its Cholesky, timed
``repeats`` times on 1 thread and on torch's default thread count, in the same run; prints the
median and the worst time of each and the ratio. Below pacbayes.device.SINGLE_THREAD_BELOW the
package uses one thread. The interesting figures come from a loaded machine (other processes
competing for the cores), where multi-threaded small work stalls on thread hand-offs.

Families: trains the demo network (``pacbayes demo``'s, on ``--m`` points) and runs README's
``certify --bounds dziugaite-roy --objective quad --prior-split 0.5`` and ``certify --bounds subspace
--subspace-dim D`` as separate processes, once idle and once beside ``--hogs`` busy-loop processes, each
with the code at ``--baseline-rev`` (extracted by ``git archive``; torch's default threads) and with this
tree's (the thread policy), interleaved in the same run. Prints wall seconds idle and loaded, their
ratio, and the certified bound of each run (the same seed gives the same bound). The 1-minute load
average is printed before each condition: "idle" is only as idle as the machine.
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from pacbayes.data import load_dataset
from pacbayes.device import SINGLE_THREAD_BELOW
from pacbayes.kernels.fc import FullyConnectedNNGP


def one_run(x: torch.Tensor) -> float:
    start = time.perf_counter()
    K = FullyConnectedNNGP(2, "relu", 1.0, 0.1).matrix(x)
    K.diagonal().add_(1e-6)
    torch.linalg.cholesky(K)
    return time.perf_counter() - start


def timed(x: torch.Tensor, threads: int, repeats: int) -> list:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        one_run(x)  # warm-up
        return [one_run(x) for _ in range(repeats)]
    finally:
        torch.set_num_threads(previous)


def by_size(args) -> None:
    """The kernel + Cholesky timings on 1 thread and on torch's default, by size."""
    images = load_dataset("mnist-embedded", split="train").x.reshape(-1, 784).double()
    default = torch.get_num_threads()
    print(f"torch threads by default: {default}; the package uses 1 below n = {SINGLE_THREAD_BELOW}")
    print(f"{'n':>6} {'1 thread median / worst (ms)':>30} {f'{default} threads median / worst (ms)':>32} {'ratio':>7}")
    for n in args.sizes:
        x = images[:n]
        repeats = max(3, args.repeats * 200 // max(n, 200))
        single, multi = timed(x, 1, repeats), timed(x, default, repeats)
        med1, med2 = statistics.median(single), statistics.median(multi)
        print(
            f"{n:>6} {med1 * 1e3:>14.1f} / {max(single) * 1e3:<14.1f} {med2 * 1e3:>16.1f} / {max(multi) * 1e3:<14.1f}"
            f" {med2 / med1:>7.2f}"
        )


# ---------------------------------------------------------------- the families beside a CPU hog
REPOSITORY = Path(__file__).resolve().parents[1]
HOG = "while True: pass"


def write_demo(folder: Path, m: int) -> None:
    """The demo's network trained to zero error on m binarised mnist-embedded points (as ``pacbayes demo``)."""
    from pacbayes.data import binarise, take
    from pacbayes.demo import INIT_FILE, MODEL_FILE, demo_network, save_exported, train_to_zero_error

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    train = take(binarise(load_dataset("mnist-embedded", split="train")), m, seed=0)
    model = demo_network()
    torch.save(model.state_dict(), folder / INIT_FILE)
    train_to_zero_error(model, train, seed=0, quiet=True)
    save_exported(model, train.x[:2], str(folder / MODEL_FILE))


def extract(revision: str, folder: Path) -> Path:
    """The package at ``revision`` of this repository, extracted into ``folder`` (git archive: no git state changes)."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", "--format=tar", revision, "pacbayes"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def commands(args, demo: Path) -> dict:
    """The two certify command lines, by name."""
    common = ["certify", str(demo / "model.pt"), "--m", str(args.m), "--json", "--quiet"]
    return {
        "dziugaite-roy": common
        + ["--bounds", "dziugaite-roy", "--init", str(demo / "init.pt"), "--objective", "quad"]
        + ["--prior-split", "0.5", "--mc-samples", str(args.mc_samples)]
        + ["--prior-epochs", str(args.prior_epochs), "--posterior-epochs", str(args.posterior_epochs)],
        "subspace": common
        + ["--bounds", "subspace", "--subspace-dim", str(args.subspace_dim)]
        + ["--subspace-epochs", str(args.subspace_epochs), "--subspace-qat-epochs", str(args.subspace_qat_epochs)],
    }


def timed_run(source: Path, argv: list, workdir: Path) -> tuple:
    """(wall seconds, certified bound) of ``pacbayes`` from ``source`` on ``argv``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("OMP_NUM_THREADS", None)  # torch's default threads, as a user gets them
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pacbayes.cli", *argv], cwd=workdir, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{source}: pacbayes {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    return seconds, report["bounds"][0]["value"]


@contextmanager
def hogs(count: int):
    """``count`` busy-loop processes for the duration (ended by their ids afterwards)."""
    started = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]
    try:
        time.sleep(1.0)
        yield
    finally:
        for process in started:
            process.kill()
            process.wait()


def families(args) -> None:
    """Each command idle and loaded, baseline and this tree's code, interleaved; then the table."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-threads-"))
    demo = Path(args.demo_dir) if args.demo_dir else workdir / "demo"
    if not args.demo_dir:
        write_demo(demo, args.m)
    sources = {"baseline": extract(args.baseline_rev, workdir / "baseline"), "new": REPOSITORY}
    runs = commands(args, demo)
    times = {}
    for condition in ("idle", "loaded"):
        print(f"{condition}: 1-minute load average {os.getloadavg()[0]:.2f} on {len(os.sched_getaffinity(0))} cores")
        with hogs(args.hogs if condition == "loaded" else 0):
            for name, argv in runs.items():
                for code, source in sources.items():
                    times[name, code, condition] = timed_run(source, argv, workdir)
    print(f"baseline: {args.baseline_rev} with torch's default threads; new: this tree (the thread policy)")
    print(f"{'command':<14} {'code':<9} {'idle s':>8} {'loaded s':>9} {'ratio':>6}  bound idle / loaded")
    for name in runs:
        for code in sources:
            (idle, b_idle), (loaded, b_loaded) = times[name, code, "idle"], times[name, code, "loaded"]
            print(
                f"{name:<14} {code:<9} {idle:>8.1f} {loaded:>9.1f} {loaded / idle:>6.2f}  {b_idle:.4f} / {b_loaded:.4f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 400, 768, 1500, 3000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--families", action="store_true", help="time the two families idle and beside a CPU hog")
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--mc-samples", type=int, default=1000)
    parser.add_argument("--prior-epochs", type=int, default=70)
    parser.add_argument("--posterior-epochs", type=int, default=40)
    parser.add_argument("--subspace-dim", type=int, default=500)
    parser.add_argument("--subspace-epochs", type=int, default=300)
    parser.add_argument("--subspace-qat-epochs", type=int, default=50)
    parser.add_argument("--hogs", type=int, default=2, help="busy-loop processes beside the loaded runs")
    parser.add_argument("--baseline-rev", default="HEAD", help="the git revision timed as the baseline")
    parser.add_argument("--demo-dir", help="a folder with the demo's model.pt and init.pt (default: train one)")
    parser.add_argument("--workdir", help="where the baseline code and the demo go (default: a new temporary folder)")
    args = parser.parse_args()
    if args.families:
        families(args)
    else:
        by_size(args)


if __name__ == "__main__":
    main()

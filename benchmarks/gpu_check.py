"""Every CUDA path of pacbayes in one run, each figure printed with its target (issue: GPU checks).

    python benchmarks/gpu_check.py                      # on a CUDA machine, <= 8 minutes
    python benchmarks/gpu_check.py --smoke --device cpu # tiny sizes: checks the script itself

Sections (each timed with CUDA synchronisation; a failing section prints FAILED and the rest run;
a section that would start after --budget seconds is skipped and says so; on CUDA each section's peak
device memory is printed and a section above --memory-gib counts as failed):

1. kernels: FC ReLU NNGP (depth 2) of n MNIST images and a 2-conv CNN NNGP (flatten read-out);
2. binary EP at m (target <= 1 s at m = 10,000 on an H100/H200-class GPU), next to one float64
   Cholesky of the same m timed in the same run;
3. multi-class EP, C = 10 (the one-logit kernel shared by ten GPs);
3b. the structured multi-class certified lower bound, C = 10, at a smaller m (its EP on the device, the
   proposal's moments on the device, the draws by the compiled kernel on the CPU), next to its EP;
4. the importance sampler alone: EP-cavity draws at m given the EP sites of section 2 (the compiled
   kernel on the CPU, the per-coordinate torch loop on other devices), with its flop rate;
5. certified binary ln P(S) at m, EP-cavity proposal given the EP of section 2, the count of draws
   fixed by a pilot at a tolerance of 0.1 nats (target <= 10 s at m = 10,000);
6. the stochastic family's Monte Carlo error on PBB's MNIST CNN (posterior std 0.03 around its
   initialisation): per-point draws (one grouped convolution per batch) against per-network draws, seconds per
   (point, draw) of each and their two estimates of the Gibbs error;
7. synthetic binary EP at a large m (random inputs; 30,000 by default, target for 50,000 <= 1 min).

Data: mnist-embedded (the package's 10,000 MNIST test images, train and test splits together),
labels binarised as digit >= 5 for the binary sections; float64 throughout.
"""

import argparse
import os
import sys
import time

import torch
from torch import nn

from pacbayes.data import load_dataset
from pacbayes.device import resolve_device
from pacbayes.evidence.ep_cavity import CavityProposal
from pacbayes.evidence.label_model import label_model
from pacbayes.evidence.multiclass_sampler import structured_certified_log_evidence
from pacbayes.evidence.sequential import uses_compiled_kernel
from pacbayes.kernels import nngp_for_module
from pacbayes.stochastic.certificate import point_sampled_error, sampled_error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pbb_mnist import cnn as pbb_cnn  # noqa: E402
from bench_point_draws import posterior_around  # noqa: E402

FULL = {
    "kernel_n": 10_000,
    "cnn_n": 1_000,
    "ep_m": 10_000,
    "multiclass_m": 5_000,
    "multiclass_sampler_m": 2_000,
    "multiclass_draws": 2_000,
    "certified_m": 10_000,
    "draws": 10_000,
    "point_n": 10_000,
    "point_passes": 5,
}
SMOKE = {
    "kernel_n": 120,
    "cnn_n": 40,
    "ep_m": 120,
    "multiclass_m": 30,
    "multiclass_sampler_m": 40,
    "multiclass_draws": 300,
    "certified_m": 60,
    "draws": 300,
    "synthetic_m": 150,
    "point_n": 40,
    "point_passes": 2,
}
SAMPLE_TOLERANCE = 0.1  # nats: the certified section's count of draws is fixed by a pilot at this tolerance


def mnist(n: int) -> tuple:
    """n MNIST images (1, 28, 28) in [0, 1] and their digits, from both embedded splits."""
    parts = [load_dataset("mnist-embedded", split=split) for split in ("train", "test")]
    x = torch.cat([p.x for p in parts])[:n].double()
    digits = torch.cat([torch.tensor([int(p.classes[i]) for i in p.labels]) for p in parts])[:n]
    return x, digits


class Clock:
    """Seconds of a block of device work (synchronised on CUDA)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        self._sync()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.seconds = time.perf_counter() - self.start

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def fc_net(inputs: int, outputs: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(inputs, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, outputs)
    )


def cnn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(64 * 28 * 28, 1),
    )  # fmt: skip


def section_kernels(device, sizes, state):
    x, digits = mnist(sizes["kernel_n"])
    kernel = nngp_for_module(fc_net(784), (1, 28, 28))
    with Clock(device) as clock:
        state["K"] = kernel.matrix(x, device=device)
    state["digits"] = digits.to(device)
    print(f"  FC NNGP depth 2, n = {len(x):,}: {clock.seconds:.2f} s")
    cnn = nngp_for_module(cnn_net(), (1, 28, 28))
    with Clock(device) as clock:
        cnn.matrix(x[: sizes["cnn_n"]], device=device)
    print(f"  2-conv CNN NNGP (flatten), n = {sizes['cnn_n']:,}: {clock.seconds:.2f} s")


def _binary_labels(state, m):
    return (state["digits"][:m] >= 5).to(torch.float64)


def section_binary_ep(device, sizes, state):
    m = sizes["ep_m"]
    block = state["K"][:m, :m].clone()
    block.diagonal().add_(1e-6)
    with Clock(device) as clock:
        torch.linalg.cholesky(block)
    cholesky = clock.seconds
    with Clock(device) as clock:
        ep = label_model(2).ep(state["K"][:m, :m], _binary_labels(state, m), jitter=1e-6, device=device)
    print(
        f"  binary EP m = {m:,}: ln P(S) = {ep.log_evidence:.4f}, {clock.seconds:.2f} s, {ep.sweeps} sweeps "
        f"({clock.seconds / cholesky:.1f} Choleskys; one Cholesky {cholesky * 1e3:.1f} ms); target <= 1 s at 10,000"
    )
    state["ep"] = ep


def section_multiclass_ep(device, sizes, state):
    m = sizes["multiclass_m"]
    with Clock(device) as clock:
        ep = label_model(10).ep(state["K"][:m, :m], state["digits"][:m], jitter=1e-6, device=device)
    print(f"  10-class EP m = {m:,}: ln P(S) = {ep.log_evidence:.4f}, {clock.seconds:.2f} s, {ep.sweeps} sweeps")


def section_multiclass_sampler(device, sizes, state):
    m, draws = sizes["multiclass_sampler_m"], sizes["multiclass_draws"]
    K, digits = state["K"][:m, :m], state["digits"][:m]
    with Clock(device) as clock:
        ep = label_model(10).ep(K, digits, jitter=1e-6, device=device, method="structured")
    print(f"  10-class structured EP m = {m:,}: ln P(S) = {ep.log_evidence:.4f}, {clock.seconds:.2f} s")
    with Clock(device) as clock:
        cert = structured_certified_log_evidence(
            K, digits.numpy(), 10, delta_prime=0.01, samples=draws, seed=0, jitter=1e-6, device=device, ep=ep
        )
    print(
        f"  structured certified m = {m:,}: lower {cert.lower:.4f}, {ep.log_evidence - cert.lower:.2f} nats below EP, "
        f"{clock.seconds:.2f} s for {draws:,} draws ({cert.effective_samples:.0f} effective)"
    )


def _certified_ep(device, sizes, state):
    """The EP result for the certified size: section 2's when the sizes agree, else one run here."""
    m = sizes["certified_m"]
    if m == sizes["ep_m"] and "ep" in state:
        return state["ep"]
    return label_model(2).ep(state["K"][:m, :m], _binary_labels(state, m), jitter=1e-6, device=device)


def section_sampler(device, sizes, state):
    m, draws = sizes["certified_m"], sizes["draws"]
    ep = state["certified_ep"] = _certified_ep(device, sizes, state)
    signs = 2.0 * _binary_labels(state, m) - 1.0
    sigma = state["K"][:m, :m] * signs[:, None] * signs[None, :]
    sigma.diagonal().add_(1e-6)
    tau = torch.as_tensor(ep.site_precision, device=device)
    proposal = CavityProposal(sigma, tau, torch.as_tensor(ep.site_natural_mean, device=device) * signs)
    del sigma
    generator = torch.Generator(device=device).manual_seed(0)
    proposal.log_weights(2, generator)  # compiles the CPU kernel (or loads numba's cache)
    with Clock(device) as clock:
        proposal.log_weights(draws, generator)
    path = "compiled CPU kernel" if uses_compiled_kernel(proposal.factor) else "per-coordinate torch loop"
    print(
        f"  EP-cavity sampler m = {m:,}: {draws:,} draws in {clock.seconds:.2f} s "
        f"({m * m * draws / clock.seconds / 1e9:.0f} GFLOP/s at m^2 flops a draw; {path})"
    )


def section_certified(device, sizes, state):
    m = sizes["certified_m"]
    ep = state.get("certified_ep") or _certified_ep(device, sizes, state)
    with Clock(device) as clock:
        cert = label_model(2).certified(
            state["K"][:m, :m],
            _binary_labels(state, m),
            delta_prime=0.01,
            seed=0,
            jitter=1e-6,
            device=device,
            ep=ep,
            sample_tolerance=SAMPLE_TOLERANCE,
        )
    print(
        f"  certified binary m = {m:,} ({cert.proposal}): lower {cert.lower:.4f}, {ep.log_evidence - cert.lower:.2f} "
        f"nats below EP, {clock.seconds:.2f} s, {cert.samples} samples after a pilot of {cert.pilot_samples} "
        f"({cert.effective_samples:.0f} effective); target <= 10 s at 10,000"
    )


def section_point_draws(device, sizes, state):
    n, passes = sizes["point_n"], sizes["point_passes"]
    x, digits = mnist(n)
    x, digits = x.float().to(device), digits.to(device)
    torch.manual_seed(0)
    net = pbb_cnn().to(device).eval()
    posterior = posterior_around(net, 0.03)
    figures = {}
    for name, sampler in (("per point", point_sampled_error), ("per network", sampled_error)):
        with Clock(device) as clock:
            error = sampler(net, posterior, x, digits, passes, generator=torch.Generator(device).manual_seed(0))
        figures[name] = (clock.seconds / (n * passes), error)
    print(
        "  PBB's CNN, "
        + "; ".join(
            f"{name}: {sec * 1e6:.1f} us per (point, draw), error {err:.4f}" for name, (sec, err) in figures.items()
        )
        + f" ({n:,} images x {passes} passes)"
    )


def section_synthetic(device, sizes, state):
    m = sizes["synthetic_m"]
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(m, 784, dtype=torch.float64, generator=generator)
    y = (x[:, :392].sum(1) > x[:, 392:].sum(1)).to(torch.float64)
    state.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    K = nngp_for_module(fc_net(784), (784,)).matrix(x, device=device)
    with Clock(device) as clock:
        ep = label_model(2).ep(K, y, jitter=1e-6, device=device)
    del K
    print(
        f"  synthetic binary EP m = {m:,}: ln P(S) = {ep.log_evidence:.2f}, {clock.seconds:.2f} s, {ep.sweeps} sweeps;"
    )
    print("  target <= 1 min at m = 50,000 (--synthetic-m 50000)")


SECTIONS = (
    ("kernels", section_kernels),
    ("binary EP", section_binary_ep),
    ("multi-class EP", section_multiclass_ep),
    ("multi-class sampler", section_multiclass_sampler),
    ("sampler", section_sampler),
    ("certified", section_certified),
    ("per-point draws", section_point_draws),
    ("synthetic EP", section_synthetic),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (checks the script on any device)")
    parser.add_argument("--synthetic-m", type=int, default=30_000)
    parser.add_argument("--budget", type=float, default=450.0, help="seconds after which no section starts")
    parser.add_argument("--memory-gib", type=float, default=70.0, help="peak device memory allowed per section")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    sizes = dict(SMOKE) if args.smoke else dict(FULL, synthetic_m=args.synthetic_m)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"pacbayes GPU check on {name}, torch {torch.__version__}, sizes {sizes}")
    started, failures, state = time.perf_counter(), 0, {}
    for title, section in SECTIONS:
        elapsed = time.perf_counter() - started
        if elapsed > args.budget:
            print(f"{title}: SKIPPED (budget of {args.budget:.0f} s used)")
            continue
        print(f"{title}:")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            section(device, sizes, state)
        except Exception as err:  # report and go on: one failure must not hide the other figures
            failures += 1
            print(f"  FAILED: {type(err).__name__}: {err}")
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**30
            over = peak > args.memory_gib
            failures += over
            print(f"  peak device memory {peak:.2f} GiB" + (f": FAILED, above {args.memory_gib:g} GiB" if over else ""))
    print(f"total {time.perf_counter() - started:.1f} s, {failures} failed sections")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

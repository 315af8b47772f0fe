"""The bound families' settings: what the user chooses for each family, torch-free.

Each family's frozen settings dataclass lives here, apart from the family's code, so that ``pacbayes``
builds the ``certify`` flags and the claims keys (the fields declared with :func:`pacbayes.options.option`)
without loading torch; each family module imports its own (``pacbayes.families.marginal.MarginalSettings``
is this module's). :data:`SETTINGS` lists them by family name, in the order of the registry
:data:`pacbayes.families.FAMILIES`, whose family ``NAME`` lives in the module
``pacbayes.families.<settings_attribute(NAME)>``.
"""

from dataclasses import dataclass

from pacbayes import checks
from pacbayes.bounds import MARGINAL_VARIANTS
from pacbayes.defaults import (
    DEFAULT_POSTERIOR_LR,
    DEFAULT_POSTERIOR_LR_VAR,
    DEFAULT_POSTERIOR_MOMENTUM,
    DEFAULT_POSTERIOR_OPTIMIZER,
    DEFAULT_PRIOR_DROPOUT,
    DEFAULT_PRIOR_STD,
    DEFAULT_SIGMOID_TEMPERATURE,
    DEFAULT_TRAINING_PRECISION,
    EVIDENCE_SAMPLE_TOLERANCE,
    KERNEL_TARGET_ERROR,
    MC_SAMPLINGS,
    MULTICLASS_METHODS,
    OBJECTIVES,
    POSTERIOR_EPOCHS,
    POSTERIOR_OPTIMIZERS,
    POSTERIOR_STARTS,
    PRIOR_EPOCHS,
    SUBSPACE_EPOCHS,
    SUBSPACE_LEVELS,
    SUBSPACE_MAX_LEVELS,
    SUBSPACE_PATIENCE,
    SUBSPACE_PRIOR_EPOCHS,
    SUBSPACE_QAT_EPOCHS,
    SUBSPACE_QAT_PATIENCE,
    SUBSPACE_RATE_WEIGHT,
    SURROGATES,
    TRAINING_PRECISIONS,
)
from pacbayes.options import ledger_option, option

DEFAULT_JITTER = 1e-6
DEFAULT_BASELINE_POINTS = 1000
KERNEL_CHOICES = ("auto", "analytic", "monte-carlo")


@dataclass(frozen=True)
class MarginalSettings:
    """Everything that fixes the prior and the estimators; chosen before seeing S.

    kernel: "auto" (analytic if the kernel compiler has a rule for every operation, else Monte Carlo), "analytic"
    or "monte-carlo". sigma_w / sigma_b: None infers PyTorch's default initialisation.
    jitter: absolute epsilon added to the kernel diagonal; part of the prior (K + eps I).
    jitter_grid: instead of one jitter, a grid G declared before seeing the data: the smallest
        value for which K + eps I is positive definite is used, and every grid point's prior gets
        delta / |G| (a union bound over G, i.e. ln|G| nats), so the choice may depend on S.
    attempts_ledger: JSON-lines file counting runs on this data and prior (any seed): attempt k
        spends 6 delta / (pi^2 k^2) (:mod:`pacbayes.attempts`, which says what the count is keyed on),
        so keeping the best seed is valid.
    no_upper / certified_method / sample_tolerance: the certified sandwich's options
        (:func:`pacbayes.evidence.certified_log_evidence`'s ``upper`` and ``sample_tolerance``, 0 for its fixed
        count; the multi-class sampler of :meth:`pacbayes.evidence.label_model.MulticlassLabels.certified`).
    """

    kernel: str = option(
        "auto",
        "--kernel-type",
        "NNGP prior: analytic when every operation of the model has a kernel rule, else Monte Carlo.",
        choices=KERNEL_CHOICES,
        aliases=("--kernel",),
    )
    sigma_w: float | None = option(None, "--sigma-w", "Weight std (default: PyTorch's default init).")
    sigma_b: float | None = option(None, "--sigma-b", "Bias std (default: PyTorch's default init).")
    kernel_samples: int | None = option(
        None,
        "--kernel-samples",
        "Random initialisations for the Monte Carlo kernel (default: chosen for an entry standard error of "
        "--kernel-error and rank >= m).",
    )
    kernel_error: float = option(
        KERNEL_TARGET_ERROR,
        "--kernel-error",
        "Monte Carlo kernel: the largest entry standard error, relative to the mean diagonal, that the automatic "
        "sample count aims at (a pilot on held-out inputs chooses it; the time grows as 1/error^2). Any value "
        "gives a valid prior; it sets how close K is to the architecture's NNGP.",
    )
    kernel_projection: int | None = option(
        None,
        "--kernel-projection",
        "Monte Carlo kernel: replace each initialisation's read-out features by this many random projections "
        "(unbiased; a prior of its own). The m x m product then costs m^2 r instead of m^2 H per initialisation: "
        "faster once m is several times r (e.g. 128 at m = 5,000), for a little more variance.",
    )
    jitter: float = option(
        DEFAULT_JITTER, "--jitter", "Absolute epsilon added to the kernel diagonal; part of the prior K + eps I."
    )
    jitter_grid: tuple = option(
        (),
        "--jitter-grid",
        "Comma-separated ascending jitters declared before seeing the data (overrides "
        "--jitter): the smallest with K + eps I positive definite is used; costs ln|G| "
        "nats of delta.",
    )
    attempts_ledger: str | None = ledger_option()
    variant: str = option(
        "langford",
        "--variant",
        "langford: Valle-Pérez et al. Cor. 1; mcallester: the authors' code.",
        choices=MARGINAL_VARIANTS,
    )
    no_upper: bool = option(
        False,
        "--no-upper",
        "Skip psi*, the deterministic upper bound on ln P(S) (the certified lower bound never uses it; without it "
        "the ep-cavity sandwich runs no minimax tilting).",
    )
    certified_method: str = option(
        "auto",
        "--certified-method",
        "Multi-class certified sampler: the dense (C-1)m orthant, or point by point without it (looser, no psi*); "
        "auto: dense up to (C-1)m = 9,000.",
        choices=MULTICLASS_METHODS,
    )
    sample_tolerance: float = option(
        EVIDENCE_SAMPLE_TOLERANCE,
        "--sample-tolerance",
        "nats: a discarded pilot of 1,000 draws fixes the certified lower bound's draw count so that ln Z_hat has "
        "at most this standard error (at most 10,000 draws; Markov's step unchanged); 0: always 10,000.",
    )
    q_star_test_points: int = option(
        DEFAULT_BASELINE_POINTS,
        "--q-star-test-points",
        "Q*'s Gibbs test error (a baseline) on a seeded subset of at most this many test points.",
    )
    seed: int = 0
    device: str | None = None
    quiet: bool = True

    def __post_init__(self):
        """Refuse a bad baseline size when the settings are made, before any work."""
        checks.integer_at_least(self.q_star_test_points, "q_star_test_points (--q-star-test-points)", 1)
        if self.kernel_projection is not None:
            checks.integer_at_least(self.kernel_projection, "kernel_projection (--kernel-projection)", 1)
        checks.finite(self.sample_tolerance, "sample_tolerance (--sample-tolerance, nats)", low=0.0)
        checks.finite(
            self.kernel_error, "kernel_error (--kernel-error)", low=0.0, high=1.0, open_low=True, open_high=True
        )


@dataclass(frozen=True)
class DziugaiteRoySettings:
    """The Dziugaite-Roy / PBB family's settings; see :func:`pacbayes.stochastic.certify_stochastic_network`.

    init_state: path of the weights at initialisation (or a state dict); init_seed: re-create them
    from the recorded seed; neither: a zero-centred prior (valid, looser, labelled in the report).
    posterior_start "prior" (default) certifies a stochastic net learned from the prior (PBB, the
    tight certificate); "model" one around MODEL's weights (Dziugaite & Roy); fixed_mean holds the
    mean at MODEL's weights. The report names the mode in ``details.mode``.
    test_draws: posterior draws used to report the stochastic net's test error (a baseline).
    """

    init_state: object = option(
        None, "--init", "Weights at initialisation (weights-only .pt) for the prior mean.", path=True
    )
    init_seed: int | None = option(None, "--init-seed", "Re-create the initial weights from this recorded seed.")
    objective: str = option("dr", "--objective", "Dziugaite-Roy (dr) or a PBB objective.", choices=OBJECTIVES)
    surrogate: str = option(
        "auto",
        "--surrogate",
        "Training risk: auto (logistic for dr, bounded cross-entropy for PBB) or sigmoid (smooth 0-1 loss).",
        choices=SURROGATES,
    )
    sigmoid_temperature: float = option(
        DEFAULT_SIGMOID_TEMPERATURE, "--sigmoid-temperature", "Temperature of --surrogate sigmoid."
    )
    posterior_start: str = option(
        "prior",
        "--posterior-start",
        "Start the posterior at the prior (a net learned from the prior, KL 0 at the start) or at MODEL's weights.",
        choices=POSTERIOR_STARTS,
    )
    prior_split: float = option(
        0.0, "--prior-split", "Fraction of S used to learn the prior (the bound uses the rest)."
    )
    prior_std: float = option(
        DEFAULT_PRIOR_STD, "--prior-std", "Prior standard deviation, fixed before seeing S (no lambda search)."
    )
    lambda_grid: bool = option(
        False, "--lambda-grid", "Search the prior variance on Dziugaite-Roy's grid (union bound, ~2 ln j nats)."
    )
    prior_epochs: int = option(
        PRIOR_EPOCHS, "--prior-epochs", "Epochs of ERM learning the prior mean (with --prior-split)."
    )
    prior_dropout: float = option(
        DEFAULT_PRIOR_DROPOUT, "--prior-dropout", "Dropout after the activation layers while learning the prior."
    )
    posterior_epochs: int = option(POSTERIOR_EPOCHS, "--posterior-epochs", "Epochs of posterior optimisation.")
    posterior_optimizer: str = option(
        DEFAULT_POSTERIOR_OPTIMIZER,
        "--posterior-optimizer",
        "Optimiser of the posterior: adam, or sgd with --posterior-momentum (PBB's: sgd, lr 0.001, lr-var 0.004, "
        "momentum 0.95).",
        choices=POSTERIOR_OPTIMIZERS,
    )
    posterior_lr: float = option(DEFAULT_POSTERIOR_LR, "--posterior-lr", "Posterior learning rate on the mean.")
    posterior_lr_var: float = option(
        DEFAULT_POSTERIOR_LR_VAR, "--posterior-lr-var", "Posterior learning rate on the log-variances."
    )
    posterior_momentum: float = option(
        DEFAULT_POSTERIOR_MOMENTUM, "--posterior-momentum", "Posterior SGD momentum (adam ignores it)."
    )
    mc_samples: int = option(1000, "--mc-samples", "Posterior draws for the sample-convergence bound.")
    mc_sampling: str = option(
        "auto",
        "--mc-sampling",
        "Monte Carlo draws: one network per draw on every point, or a fresh draw per point (Sequential models "
        "of Linear/Conv2d layers, activations and pooling; n m independent draws); auto: per point wherever the "
        "model allows it.",
        choices=MC_SAMPLINGS,
    )
    per_point_training: bool = option(
        False,
        "--per-point-training",
        "Train the posterior with a fresh weight draw per input (Sequential models of Linear/Conv2d layers, "
        "activations and pooling).",
    )
    fixed_mean: bool = option(False, "--fixed-mean", "Keep the posterior mean at MODEL's weights.")
    training_precision: str = option(
        DEFAULT_TRAINING_PRECISION,
        "--training-precision",
        "Precision of the forward passes that train the prior mean and the posterior (bfloat16: under autocast, "
        "fast on CPUs with AVX-512 BF16 or AMX and on recent GPUs); the certificate is computed in float32.",
        choices=TRAINING_PRECISIONS,
    )
    attempts_ledger: str | None = ledger_option()
    test_draws: int = 20


@dataclass(frozen=True)
class SubspaceSettings:
    """The compression family's settings: a compressed model to certify, or d to train one.

    compressed: a pacbayes.subspace.CompressedSubspaceModel (e.g. loaded from a subspace file);
    dim: otherwise train one in a d-dimensional subspace from a seeded random theta0 (never the
    trained weights), distilling from the user's model when ``distill``, for at most ``epochs``
    epochs (to convergence with ``patience``), at learning rate ``lr``, with at most ``qat_epochs``
    of quantisation-aware fine-tuning (to convergence with ``qat_patience``, the code length
    weighted by ``rate_weight``) for each level count in ``levels`` (the grid is union-bounded).
    prior_split: with a fraction in (0, 1), theta0 is first trained for ``prior_epochs`` on that part
    of S and the bound uses the rest (a data-dependent prior; 0: seeded theta0, all of S).
    extra_configurations: hyper-parameter settings tried beyond the recorded levels grid: count every
    value of d, epochs, lr, ... you tried. attempts_ledger: JSON-lines file counting runs on this data and
    these settings (any seed; :mod:`pacbayes.attempts`): attempt k spends 6 delta / (pi^2 k^2), so
    keeping the best seed is valid (without one, a run spends the family's whole share and
    --configurations stands for every try).
    """

    compressed: object = None
    dim: int | None = option(
        None,
        "--subspace-dim",
        "Train a compressed model in a random d-dimensional subspace from a seeded "
        "random start (the bound is for that model).",
    )
    distill: bool = option(False, "--subspace-distill", "Distil the subspace model from MODEL's predictions.")
    epochs: int = option(
        SUBSPACE_EPOCHS, "--subspace-epochs", "Most epochs of subspace training (it stops earlier at convergence)."
    )
    patience: int = option(
        SUBSPACE_PATIENCE,
        "--subspace-patience",
        "Stop once the training loss has not improved for this many epochs (0: run all --subspace-epochs).",
    )
    # 0.2: chosen by benchmarks/defaults_protocol_subspace.py over four data sets and three seeds (docs/bounds.md,
    # "The subspace defaults under the protocol"); it was 0.05.
    lr: float = option(0.2, "--subspace-lr", "Adam learning rate of subspace training (fine-tuning uses lr / 5).")
    qat_epochs: int = option(
        SUBSPACE_QAT_EPOCHS,
        "--subspace-qat-epochs",
        "Epochs of quantisation-aware fine-tuning per level count; every epoch's model is a candidate "
        "(the best bound is kept, all are counted in the configurations).",
    )
    qat_patience: int = option(
        SUBSPACE_QAT_PATIENCE or 0,
        "--subspace-qat-patience",
        "Stop fine-tuning once its loss has not improved for this many epochs (0: run all --subspace-qat-epochs).",
    )
    rate_weight: float = option(
        SUBSPACE_RATE_WEIGHT,
        "--subspace-rate-weight",
        "Weight of the code length in fine-tuning (w ln 2 / m per bit; 0: cross-entropy only).",
    )
    levels: tuple = option(
        SUBSPACE_LEVELS,
        "--subspace-levels",
        "Quantisation level counts tried (each counted in the configurations).",
        limits=(1, SUBSPACE_MAX_LEVELS),
    )
    prior_split: float = option(
        0.0,
        "--subspace-prior-split",
        "Fraction of S on which theta0 is trained before the subspace (a data-dependent prior; "
        "the bound uses the rest; 0: a seeded random theta0 and all of S).",
    )
    prior_epochs: int = option(
        SUBSPACE_PRIOR_EPOCHS, "--subspace-prior-epochs", "Epochs of training theta0 (with --subspace-prior-split)."
    )
    extra_configurations: int = option(
        1, "--configurations", "Number of hyper-parameter settings (d, seeds, ...) you tried; union-bounded."
    )
    attempts_ledger: str | None = ledger_option()


SETTINGS = {
    "marginal": MarginalSettings,
    "dziugaite-roy": DziugaiteRoySettings,
    "subspace": SubspaceSettings,
}
"""Family name -> its settings dataclass, for every built-in family, in the registry's order."""


def settings_attribute(name: str) -> str:
    """The attribute of :class:`pacbayes.certification.CertifyOptions` holding family ``name``'s settings
    (also the name of the family's module in :mod:`pacbayes.families`)."""
    return name.replace("-", "_")


__all__ = [
    "DEFAULT_BASELINE_POINTS",
    "DEFAULT_JITTER",
    "KERNEL_CHOICES",
    "SETTINGS",
    "DziugaiteRoySettings",
    "MarginalSettings",
    "SubspaceSettings",
    "settings_attribute",
]

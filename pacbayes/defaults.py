"""The defaults and choices that user options offer, torch-free.

``pacbayes`` builds every command's flags (and the bound families' settings dataclasses,
:mod:`pacbayes.families.settings`) when it starts; the values they show live here so that doing so
loads neither torch nor the modules that compute with them. Those modules import their defaults from
here, under the names they have always had (e.g. :data:`pacbayes.evidence.ep.DEFAULT_TOL`). The
activations are listed in their own table, :mod:`pacbayes.activations`.
"""

# ---------------------------------------------------------------- kernels and evidence
EP_TOL = 1e-6
"""EP convergence: relative change of ln Z between sweeps (:data:`pacbayes.evidence.ep.DEFAULT_TOL`)."""
EVIDENCE_SAMPLES = 10_000
"""Importance samples of the certified lower bound on ln P(S) (:data:`pacbayes.evidence.certified.DEFAULT_SAMPLES`)."""
EVIDENCE_SAMPLE_TOLERANCE = 0.1
"""nats: certify's certified lower bound fixes its draw count from a discarded pilot so that the standard error of
ln Z_hat is at most this, within [1,000, EVIDENCE_SAMPLES] (:func:`pacbayes.evidence.certified_log_evidence`)."""
KERNEL_TARGET_ERROR = 0.01
"""The Monte Carlo kernel's automatic sample count aims at this largest entry standard error, relative to the mean
diagonal (:data:`pacbayes.kernels.monte_carlo.TARGET_ERROR`)."""
PROPOSALS = ("ep-cavity", "tilted")
"""Proposals of the importance sampler behind the certified lower bound."""
DEFAULT_PROPOSAL = "ep-cavity"
MULTICLASS_METHODS = ("auto", "dense", "structured")
"""Multi-class EP and certified samplers: the dense (C-1)m orthant, the structured one, or chosen by size."""

# ---------------------------------------------------------------- stochastic networks (Dziugaite-Roy / PBB)
POSTERIOR_EPOCHS = 40
"""Epochs of posterior optimisation (:class:`pacbayes.stochastic.train.Schedule`'s default)."""
PRIOR_EPOCHS = 70
"""Epochs of ERM for a learned prior mean: PBB's 70 (Pérez-Ortiz et al. 2021, Section 6)."""
DEFAULT_PRIOR_STD = 0.03
"""Prior standard deviation fixed in advance (PBB's sigma_prior = 0.03 for MNIST)."""
DEFAULT_PRIOR_DROPOUT = 0.2
"""Dropout while learning the prior mean (PBB's 0.2)."""
POSTERIOR_STARTS = ("prior", "model")
"""Where the posterior mean starts: at the prior mean (learned-from-prior) or at MODEL's weights."""
MC_SAMPLINGS = ("auto", "network", "point")
"""Monte Carlo draws: one network per draw scored on every point, or a fresh network per (draw, point);
"auto" takes "point" wherever the model allows it (:func:`pacbayes.stochastic.local.resolve_mc_sampling`)."""
DEFAULT_SIGMOID_TEMPERATURE = 0.15
"""Temperature T of :func:`pacbayes.stochastic.network.sigmoid_surrogate`: a fixed constant, chosen on the
data-independent benchmark (binary mnist-embedded, m = 5,000, 784-600-1) among T in {0.1, 0.15, 0.3, 1}."""
POSTERIOR_OPTIMIZERS = ("adam", "sgd")
"""Optimisers of the posterior (:class:`pacbayes.stochastic.train.Schedule`)."""
DEFAULT_POSTERIOR_OPTIMIZER = "adam"
DEFAULT_POSTERIOR_LR = 1e-4
"""The posterior's learning rate on its mean."""
DEFAULT_POSTERIOR_LR_VAR = 1e-2
"""The posterior's learning rate on log s (and log lambda)."""
DEFAULT_POSTERIOR_MOMENTUM = 0.9
"""The posterior's SGD momentum (Adam ignores it)."""
TRAINING_PRECISIONS = ("float32", "bfloat16")
"""Precision of the forward passes that train the prior mean and the posterior: float32, or bfloat16 under
``torch.autocast`` (:func:`pacbayes.stochastic.train.training_precision`). The certificate (the Monte Carlo error and
the KL) is always computed in float32 / float64."""
DEFAULT_TRAINING_PRECISION = "float32"
"""float32: bfloat16 is slower on CPUs without BF16 instructions."""
OBJECTIVES = ("dr", "quad", "lambda", "classic")
SURROGATES = ("auto", "logistic", "bounded-ce", "sigmoid")
"""Surrogate risks for training: "auto" is "logistic" for objective "dr" and "bounded-ce" for PBB's."""

# ---------------------------------------------------------------- random-subspace compression
SUBSPACE_LEVELS = (4, 8, 16)
"""Quantisation level counts tried by default."""
SUBSPACE_MAX_LEVELS = 4096
"""The most levels a grid may try: far beyond any useful codebook (Lotfi et al. use at most 16), and a
bound on the d x L distances that quantising z computes."""
SUBSPACE_EPOCHS = 300
"""Most epochs of subspace training; with SUBSPACE_PATIENCE it stops at convergence, usually earlier."""
SUBSPACE_PATIENCE = 20
"""Epochs without a 1e-4 relative improvement of the training loss after which training stops."""
SUBSPACE_QAT_EPOCHS = 50
"""Epochs of quantisation-aware fine-tuning per level count."""
SUBSPACE_QAT_PATIENCE = None
"""None: run every fine-tuning epoch (compress_subspace_model scores each one). Stopping on the
epoch-mean loss ended fine-tuning within a few epochs, before the levels had settled."""
SUBSPACE_RATE_WEIGHT = 8.0
"""Weight of the code-length term: w ln 2 / m per bit, added to the mean cross-entropy."""
SUBSPACE_PRIOR_EPOCHS = 30
"""Epochs of Adam training every parameter of theta0 on the prior part (with a prior split)."""

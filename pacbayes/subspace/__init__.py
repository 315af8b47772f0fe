"""Random-subspace compression bounds (Lotfi et al. 2022; Li et al. 2018; Zhou et al. 2019).

Train theta = theta0 + P z in a seeded d-dimensional subspace (:class:`SubspaceModel`), quantise z
and entropy-code it (:func:`compress`), and bound the decoded model's error with a 2^-l prior over
messages (:func:`subspace_bound`). With your own training loop: wrap, train ``model.z``, then
:func:`compress_subspace_model`; :func:`train_subspace_model` does all of it for an ordinary model.
"""

from pacbayes.subspace.bound import subspace_bound
from pacbayes.subspace.compressed import CompressedSubspaceModel, compress
from pacbayes.subspace.files import is_subspace_file, load_model_or_subspace, load_subspace_model, save_subspace_model
from pacbayes.subspace.model import SubspaceModel, reinitialise
from pacbayes.subspace.training import (
    DEFAULT_LEVELS,
    compress_subspace_model,
    finetune_quantised,
    fit_subspace,
    train_subspace_model,
)

__all__ = [
    "SubspaceModel",
    "reinitialise",
    "CompressedSubspaceModel",
    "compress",
    "fit_subspace",
    "finetune_quantised",
    "compress_subspace_model",
    "train_subspace_model",
    "DEFAULT_LEVELS",
    "subspace_bound",
    "save_subspace_model",
    "load_subspace_model",
    "is_subspace_file",
    "load_model_or_subspace",
]

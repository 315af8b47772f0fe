"""Models: loading users' files safely, running them as classifiers, rebuilding programs as
plain modules, and re-initialising them under a seed.

- :mod:`pacbayes.models.loading`: :func:`load_model`, :func:`model_file_kind`,
  :func:`archive_kind`, :func:`instantiate_architecture`, :func:`require_trusted_code`,
  :func:`load_state_dict_file`, :func:`check_state_tensors` (every file kind; pickles only when trusted, code
  named by a file only when the caller allows it).
- :mod:`pacbayes.models.archives`: :func:`~pacbayes.models.archives.check_export_archive` (a ``torch.export``
  archive inspected before torch reads it).
- :mod:`pacbayes.models.classifier`: :func:`model_outputs`, :func:`output_dim`,
  :func:`predict_labels`, :func:`zero_one_error`, :func:`classification_error`, and the one
  logits -> labels / 0-1 loss path they share (:func:`labels_from_logits`, :func:`count_mistakes`).
- :mod:`pacbayes.models.programs`: :class:`ExportedModel`, :func:`as_plain_sequential`.
- :mod:`pacbayes.models.initialise`: :func:`reinitialise`, :func:`reset_parameters`,
  :func:`check_resettable`, :func:`seeded_rng` (PyTorch's default init under a seed).

The supported torch.nn layer types are listed in :mod:`pacbayes.layers`.
"""

from pacbayes.models.classifier import (
    classification_error,
    count_mistakes,
    labels_from_logits,
    model_outputs,
    output_dim,
    predict_labels,
    zero_one_error,
)
from pacbayes.models.initialise import check_resettable, reinitialise, reset_parameters, seeded_rng
from pacbayes.models.loading import (
    KINDS,
    archive_kind,
    check_state_tensors,
    instantiate_architecture,
    load_model,
    load_state_dict_file,
    model_file_kind,
    require_trusted_code,
)
from pacbayes.models.programs import ExportedModel, as_plain_sequential

__all__ = [
    "KINDS",
    "ExportedModel",
    "archive_kind",
    "as_plain_sequential",
    "check_resettable",
    "check_state_tensors",
    "classification_error",
    "count_mistakes",
    "instantiate_architecture",
    "labels_from_logits",
    "load_model",
    "load_state_dict_file",
    "model_file_kind",
    "model_outputs",
    "output_dim",
    "predict_labels",
    "reinitialise",
    "require_trusted_code",
    "reset_parameters",
    "seeded_rng",
    "zero_one_error",
]

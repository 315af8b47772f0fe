"""pacbayes: certified PAC-Bayes generalisation bounds for trained neural networks.

The public API, importable from here::

    certify, CertifyOptions, Report           one report: measured errors and every requested bound
    BoundMonitor, MonitorResult               bounds inside a training loop
    assert_certified                          a generalisation claim as a test assertion
    BoundResult                               the record every bound family returns
    FAMILIES                                  the registry of bound families
    Dataset, load_dataset                     data, from the embedded MNIST default or files
    certified_subset                          the exact training subset certify uses
    load_model                                model files, safely (no unpickling unless asked)
    PacBayesError, InputError                 the errors bad input raises

``pacbayes.bounds`` is the bound arithmetic on plain numbers (torch-free). Importing the top-level
package is cheap and torch-free; every name but the errors is imported on first use.
"""

import importlib

__version__ = "0.1.0"

from pacbayes.errors import InputError, PacBayesError  # noqa: E402  (torch-free)

_LAZY = {
    "certify": ("pacbayes.certification", "certify"),
    "CertifyOptions": ("pacbayes.certification", "CertifyOptions"),
    "Report": ("pacbayes.certification", "Report"),
    "BoundMonitor": ("pacbayes.monitor", "BoundMonitor"),
    "MonitorResult": ("pacbayes.monitor", "MonitorResult"),
    "assert_certified": ("pacbayes.testing", "assert_certified"),
    "BoundResult": ("pacbayes.results", "BoundResult"),
    "FAMILIES": ("pacbayes.families", "FAMILIES"),
    "Dataset": ("pacbayes.data", "Dataset"),
    "load_dataset": ("pacbayes.data", "load_dataset"),
    "certified_subset": ("pacbayes.data", "certified_subset"),
    "load_model": ("pacbayes.models", "load_model"),
}

__all__ = ["InputError", "PacBayesError", "__version__", *_LAZY]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'pacbayes' has no attribute {name!r}")

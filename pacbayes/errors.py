"""Errors that the CLI turns into one clear line (no traceback).

Every check that rejects user input raises a subclass of :class:`PacBayesError`
with a message that names the problem and, where there is one, the fix.
"""


class PacBayesError(ValueError):
    """Bad input or a computation that cannot give a trustworthy number."""


class InputError(PacBayesError):
    """An argument, array, label vector or file is malformed or out of range."""


class ConvergenceError(PacBayesError):
    """An iterative estimator (EP, a tilting solver) did not converge."""


class ModelLoadError(PacBayesError):
    """A model file is corrupt, of an unsupported kind, or untrusted."""


def one_line(err, limit: int = 200) -> str:
    """The message of ``err`` on one line, cut to ``limit`` characters (for messages that quote it)."""
    text = " ".join(str(err).split())
    return text[:limit] + ("..." if len(text) > limit else "")

"""Errors that the CLI turns into one clear line (no traceback).

Every check that rejects user input raises a subclass of :class:`PacBayesError`
with a message that names the problem and, where there is one, the fix.
"""

import re


class PacBayesError(ValueError):
    """Bad input or a computation that cannot give a trustworthy number."""


class InputError(PacBayesError):
    """An argument, array, label vector or file is malformed or out of range."""


class ConvergenceError(PacBayesError):
    """An iterative estimator (EP, a tilting solver) did not converge."""


class ModelLoadError(PacBayesError):
    """A model file is corrupt, of an unsupported kind, or untrusted."""


class PacBayesWarning(UserWarning):
    """Input that is accepted but probably not what was meant; the CLI prints it as ``pacbayes: warning: ...``."""


class DataWarning(PacBayesWarning):
    """Data whose value range suggests a scaling mistake (raw pixels as floats, train and test scaled apart)."""


_TERMINAL_CODES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")
"""ANSI escape sequences (colours, bold) and other control characters, as third-party messages carry them."""


def one_line(err, limit: int = 200) -> str:
    """The message of ``err`` on one line, without terminal escapes, cut after at most ``limit`` characters
    at a word boundary (for messages that quote third-party text)."""
    text = " ".join(_TERMINAL_CODES.sub("", str(err)).split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.") + "..."

"""Recording attempts so that re-running with new seeds is union-bounded, not cherry-picked.

Attempt k >= 1 on the same model and data spends delta_k = 6 delta / (pi^2 k^2) of the user's delta
(:func:`pacbayes.bounds.series_delta`); sum_k delta_k = delta, so every attempt ever made holds at
once with probability >= 1 - delta and keeping the best of them is valid. The attempt number is
either passed by the caller or read from a ledger file (JSON lines, one per attempt, keyed by a
fingerprint of what the bound is about: the model's weights and the data for the stochastic family,
the data and the prior's settings for the marginal family), appended to before the run starts. One
ledger file may serve several families: their keys differ.
"""

import hashlib
import json
import time
from pathlib import Path

from pacbayes.errors import InputError
from pacbayes.options import option


def ledger_option():
    """The ``--attempts-ledger`` settings field every family that counts its runs declares (one flag)."""
    return option(
        None,
        "--attempts-ledger",
        "JSON-lines file counting runs (any seed) on this model/prior and data; "
        "attempt k spends 6 delta / (pi^2 k^2), so keeping the best is valid.",
        path=True,
    )


def fingerprint(tensors, text: str = "") -> str:
    """sha256 of ``text`` and of the named tensors ``(name, tensor)`` (bytes of the CPU tensors)."""
    digest = hashlib.sha256(text.encode())
    for name, t in tensors:
        digest.update(name.encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def record_attempt(ledger: Path, key: str, settings: dict) -> int:
    """Append one attempt for ``key`` to ``ledger`` and return its number (1 for the first)."""
    ledger = Path(ledger)
    previous = 0
    if ledger.exists():
        try:
            lines = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
        except (json.JSONDecodeError, OSError) as err:
            raise InputError(
                f"attempts ledger {str(ledger)!r} is unreadable ({err}); repair it or pass "
                "another file (deleting it breaks the union bound over past attempts)"
            ) from err
        previous = sum(1 for entry in lines if entry.get("key") == key)
    attempt = previous + 1
    with ledger.open("a") as out:
        out.write(json.dumps({"key": key, "attempt": attempt, "time": time.time(), **settings}) + "\n")
    return attempt

"""Bounds in other tools' loops: a Lightning callback and a TensorBoard logger for BoundMonitor.

Optional: neither tool is a dependency of pacbayes, and importing this package imports neither.

    from pacbayes.integrations.tensorboard import TensorBoardLogger    # pip install tensorboard
    from pacbayes.integrations.lightning import BoundMonitorCallback   # pip install "pacbayes[lightning]"

Importing one of those modules without its tool installed raises ImportError naming the pip
command that installs it.
"""

PREFIX = "pacbayes"


def scalars(result, prefix: str = PREFIX) -> dict:
    """tag -> value of one :class:`~pacbayes.monitor.MonitorResult`, as both integrations log it:
    ``{prefix}/train_error``, ``{prefix}/test_error`` (with held-out data), ``{prefix}/bounds/<name>``
    for each bound that applies to the network at that checkpoint (estimates keep their names, e.g.
    ``marginal-ep``) and ``{prefix}/seconds``. A bound that does not apply yet (the marginal bound
    before the network fits S) is left out, so its curve starts where it first applies instead of
    showing a flat line that speaks about no network."""
    values = {f"{prefix}/train_error": result.train_error}
    if result.test_error is not None:
        values[f"{prefix}/test_error"] = result.test_error
    values.update({f"{prefix}/bounds/{b.name}": b.value for b in result.bounds if result.applies.get(b.name, True)})
    values[f"{prefix}/seconds"] = result.seconds
    return values


def missing(tool: str, pip: str) -> ImportError:
    """The ImportError for an integration whose tool is not installed, with the command that installs it."""
    return ImportError(f"this pacbayes integration needs {tool}, which is not installed; install it with: {pip}")


__all__ = ["PREFIX", "missing", "scalars"]

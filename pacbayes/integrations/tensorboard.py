"""TensorBoard scalars for :class:`pacbayes.monitor.BoundMonitor`, through ``torch.utils.tensorboard``.

``TensorBoardLogger`` is a monitor ``callback``: every checkpoint writes, at its step, the scalars
of :func:`pacbayes.integrations.scalars` (``pacbayes/train_error``, ``pacbayes/test_error``,
``pacbayes/bounds/<name>``, ``pacbayes/seconds``). Estimates and certified numbers keep their bound
names, so the marginal EP estimate (``marginal-ep``) is never mistaken for a certificate, and a bound
is written only from the first checkpoint at which it applies to the network (the marginal bound
once the network fits S), never as a flat line before it::

    from pacbayes.integrations.tensorboard import TensorBoardLogger

    logger = TensorBoardLogger("runs/pacbayes")
    monitor = BoundMonitor(model, train, test=test, callback=logger)
    ...
    logger.close()
"""

from pacbayes.integrations import PREFIX, missing, scalars

try:
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # torch.utils.tensorboard needs the tensorboard package
    raise missing("the tensorboard package", "pip install tensorboard") from None


class TensorBoardLogger:
    """A BoundMonitor ``callback`` writing each checkpoint's :func:`scalars` at its step.

    log_dir: where the event files go (SummaryWriter's default ``runs/...`` if None); writer: an
    existing ``SummaryWriter`` to write into instead (then ``close`` leaves it open).
    """

    def __init__(self, log_dir: str | None = None, *, writer=None, prefix: str = PREFIX):
        self._owned = writer is None
        self.writer = SummaryWriter(log_dir=log_dir) if writer is None else writer
        self.prefix = prefix

    def __call__(self, result) -> None:
        for tag, value in scalars(result, self.prefix).items():
            self.writer.add_scalar(tag, value, global_step=result.step)
        self.writer.flush()

    def close(self) -> None:
        """Flush, and close the writer if this logger made it."""
        self.writer.flush()
        if self._owned:
            self.writer.close()


__all__ = ["TensorBoardLogger"]

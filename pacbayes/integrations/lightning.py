"""A Lightning callback that runs :class:`pacbayes.monitor.BoundMonitor` during ``Trainer.fit``.

    from pacbayes.integrations.lightning import BoundMonitorCallback

    callback = BoundMonitorCallback(train, test=test)          # pacbayes Datasets: S and held-out data
    trainer = lightning.pytorch.Trainer(max_epochs=30, callbacks=[callback])
    trainer.fit(module, loader)                                # a loader over the same S
    report = callback.monitor.final(module)                    # the certified numbers

When fitting starts the callback builds the monitor on the network (the LightningModule itself, or
its attribute ``network`` if given; it must map inputs to logits), with ``total_steps`` set to the
trainer's estimated number of optimiser steps, so that checkpoints spread over the whole run and
one is computed at the last step. After every optimiser step (with gradient accumulation, not
after the batches in between) it calls ``monitor.step``; every computed checkpoint is passed to
the trainer's logger (``log_metrics`` at the global step, the tags of
:func:`pacbayes.integrations.scalars`) and to an optional ``callback``. If training ends early,
``on_train_end`` computes a last checkpoint. The monitor evaluates on the CPU, where its data is.
"""

import math
from collections.abc import Callable

from pacbayes.errors import InputError
from pacbayes.integrations import missing, scalars

try:
    from lightning.pytorch import Callback
except ImportError:
    try:
        from pytorch_lightning import Callback
    except ImportError:
        raise missing("Lightning", 'pip install "pacbayes[lightning]"  (or: pip install lightning)') from None


class BoundMonitorCallback(Callback):
    """Runs a BoundMonitor inside ``Trainer.fit`` (see the module docstring).

    train / test: the pacbayes Datasets the monitor measures on (S, and held-out data for the
    hold-out bound); network: the name of the LightningModule's attribute holding the network
    (None: the module itself); callback: called with every computed MonitorResult; log: pass each
    checkpoint to the trainer's logger. Every other keyword argument goes to BoundMonitor.
    """

    def __init__(
        self,
        train,
        *,
        test=None,
        network: str | None = None,
        callback: Callable | None = None,
        log: bool = True,
        **monitor_kwargs,
    ):
        super().__init__()
        for reserved in ("total_steps", "callback"):
            if reserved in monitor_kwargs:
                raise InputError(f"BoundMonitorCallback sets {reserved} itself; leave it out of the keyword arguments")
        self.train, self.test, self.network = train, test, network
        self.callback, self.log = callback, log
        self.monitor_kwargs = monitor_kwargs
        self.monitor = None
        self._optimiser_steps = 0

    def _network(self, pl_module):
        if self.network is None:
            return pl_module
        if not hasattr(pl_module, self.network):
            raise InputError(f"the LightningModule has no attribute {self.network!r}; name the one holding the network")
        return getattr(pl_module, self.network)

    def on_fit_start(self, trainer, pl_module) -> None:
        from pacbayes.monitor import BoundMonitor

        if pl_module.device.type != "cpu":
            raise InputError(
                f"BoundMonitorCallback evaluates on the CPU but the model is on {pl_module.device}; "
                "train on the CPU (accelerator='cpu') or use BoundMonitor by hand"
            )
        self._optimiser_steps = trainer.global_step
        steps = trainer.estimated_stepping_batches
        total = int(steps) if isinstance(steps, (int, float)) and math.isfinite(steps) and steps >= 1 else None
        self.monitor = BoundMonitor(
            self._network(pl_module),
            self.train,
            test=self.test,
            total_steps=total,
            callback=lambda result: self._record(trainer, result),
            **self.monitor_kwargs,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self._optimiser_steps:  # one monitor step per optimiser step
            self._optimiser_steps = trainer.global_step
            self.monitor.step(self._network(pl_module))

    def on_train_end(self, trainer, pl_module) -> None:
        monitor = self.monitor
        ended_early = not monitor.history or monitor.history[-1].step != monitor.calls
        if ended_early and len(monitor.history) < monitor.max_checkpoints:
            monitor.compute(self._network(pl_module))

    def _record(self, trainer, result) -> None:
        if self.log and trainer.logger is not None:
            trainer.logger.log_metrics(scalars(result), step=trainer.global_step)
        if self.callback is not None:
            self.callback(result)


__all__ = ["BoundMonitorCallback"]

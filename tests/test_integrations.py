"""The TensorBoard logger and the Lightning callback, read back independently; import without the tools."""

import csv
import subprocess
import sys

import pytest
import torch
from tasks import MnistTask

from pacbayes.demo import demo_network
from pacbayes.monitor import BoundMonitor

M = 60
WIDTH = 32


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=M, n_test=200, seed=2, width=WIDTH)


def test_tensorboard_logger_writes_every_checkpoint(data, trained, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from pacbayes.integrations.tensorboard import TensorBoardLogger

    train, test = data
    logger = TensorBoardLogger(str(tmp_path))
    monitor = BoundMonitor(trained, train, test=test, every=2, max_checkpoints=3, callback=logger)
    for _ in range(6):
        monitor.step(trained)
    logger.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"pacbayes/train_error", "pacbayes/test_error", "pacbayes/seconds"}
    expected |= {f"pacbayes/bounds/{name}" for name in monitor.history[0].names()}
    assert tags == expected
    holdout = events.Scalars("pacbayes/bounds/holdout")
    assert [e.step for e in holdout] == [r.step for r in monitor.history] == [2, 4, 6]
    assert [e.value for e in holdout] == pytest.approx([r.values["holdout"] for r in monitor.history], rel=1e-6)
    assert [e.value for e in events.Scalars("pacbayes/train_error")] == [r.train_error for r in monitor.history]


class _Module:
    """A LightningModule around a network (built lazily: lightning is an optional import)."""

    @staticmethod
    def make(network):
        import lightning.pytorch as pl

        class Classifier(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = network

            def forward(self, x):
                return self.net(x)

            def training_step(self, batch, batch_idx):
                x, y = batch
                return torch.nn.functional.binary_cross_entropy_with_logits(self(x).squeeze(-1), y.float())

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=1e-3)

        return Classifier()


def fit(data, *, epochs, extra_callbacks=(), trainer_kwargs=None, **callback_kwargs):
    """Train the demo network with Lightning for ``epochs`` on S (batches of 20), logging to ./run;
    returns (module, callback, trainer)."""
    pytest.importorskip("lightning")
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from pacbayes.integrations.lightning import BoundMonitorCallback

    train, test = data
    torch.manual_seed(0)
    module = _Module.make(demo_network(width=WIDTH))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train.x, train.labels),
        batch_size=20,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    callback = BoundMonitorCallback(train, test=test, every=1, **callback_kwargs)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(".", name="run"),
        callbacks=[callback, *extra_callbacks],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **(trainer_kwargs or {}),
    )
    trainer.fit(module, loader)
    return module, callback, trainer


def test_lightning_callback_spreads_checkpoints_to_the_last_step_and_logs_them(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    _, callback, trainer = fit(data, epochs=5, max_checkpoints=4, callback=seen.append)
    monitor = callback.monitor
    steps = 5 * 3  # 60 points in batches of 20
    assert monitor.total_steps == steps == trainer.global_step and monitor.calls == steps
    assert [r.step for r in monitor.history] == [1, 6, 11, 15]  # >= 15 / 3 apart, the last at the end
    assert seen == monitor.history
    assert monitor.history[-1].train_error < monitor.history[0].train_error  # it tracks the training
    with open(next(tmp_path.rglob("metrics.csv"))) as stream:
        rows = list(csv.DictReader(stream))
    logged = [float(r["pacbayes/bounds/holdout"]) for r in rows if r.get("pacbayes/bounds/holdout")]
    assert logged == pytest.approx([r.values["holdout"] for r in monitor.history], rel=1e-6)


def test_lightning_callback_computes_a_last_checkpoint_when_training_stops_early(data, tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    import lightning.pytorch as pl

    class StopAtFour(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            trainer.should_stop = trainer.global_step >= 4

    monkeypatch.chdir(tmp_path)
    _, callback, trainer = fit(data, epochs=5, max_checkpoints=4, extra_callbacks=[StopAtFour()])
    monitor = callback.monitor
    assert monitor.total_steps == 15 and monitor.calls < 15  # planned 15 steps, stopped early
    assert monitor.history[-1].step == monitor.calls and [r.step for r in monitor.history][0] == 1


def test_lightning_callback_steps_once_per_optimiser_step(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, callback, trainer = fit(data, epochs=4, max_checkpoints=3, trainer_kwargs={"accumulate_grad_batches": 3})
    monitor = callback.monitor
    assert monitor.total_steps == 4 == trainer.global_step == monitor.calls  # 3 batches per optimiser step
    assert [r.step for r in monitor.history] == [1, 3, 4]  # >= 4 / 2 apart, the last at the end


def test_lightning_callback_refuses_what_it_sets_itself(data):
    pytest.importorskip("lightning")
    from pacbayes.errors import InputError
    from pacbayes.integrations.lightning import BoundMonitorCallback

    with pytest.raises(InputError, match="total_steps"):
        BoundMonitorCallback(data[0], total_steps=10)


def test_the_package_imports_without_the_tools_and_says_how_to_install_them():
    """With lightning and tensorboard hidden, pacbayes.integrations imports and each module names its pip line."""
    code = (
        "import sys\n"
        "for name in ('lightning', 'pytorch_lightning', 'tensorboard', 'torch.utils.tensorboard'):\n"
        "    sys.modules[name] = None\n"
        "import pacbayes.integrations\n"
        "for module, words in (('lightning', 'pacbayes[lightning]'), ('tensorboard', 'pip install tensorboard')):\n"
        "    try:\n"
        "        __import__('pacbayes.integrations.' + module)\n"
        "    except ImportError as err:\n"
        "        assert words in str(err) and '\\n' not in str(err), err\n"
        "    else:\n"
        "        raise SystemExit(module + ' imported without its tool')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

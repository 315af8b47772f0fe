"""``pacbayes demo``: train a small fully connected ReLU net on mnist-embedded and certify it.

The whole product on its default data: binarised MNIST (digits 0-4 vs 5-9), m training points
from the embedded train split, a depth-2 ReLU net with one logit trained by Adam to zero training
error (seeded), saved as a ``torch.export`` program (``model.pt``; TorchScript, deprecated in
torch 2.13, is still loaded but no longer written), loaded back from the file like any user's
model, and certified with the marginal-likelihood bound against the 5,000-image embedded test
split. The initial weights are saved too (``init.pt``), as the prior mean for ``--bounds
dziugaite-roy --init``.
"""

import io
import os

import torch
from torch import nn

from pacbayes import checks
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import Dataset, binarise, load_dataset, take
from pacbayes.errors import ConvergenceError
from pacbayes.models import classification_error, load_model, output_dim
from pacbayes.progress import progress
from pacbayes.report import write_atomically

DEMO_WIDTH = 512
DEMO_DEPTH = 2
MODEL_FILE = "model.pt"
INIT_FILE = "init.pt"


def demo_files(workdir) -> dict:
    """The files the demo writes in ``workdir``, by what each is."""
    return {
        "the demo's trained model": os.path.join(workdir, MODEL_FILE),
        "the demo's initial weights": os.path.join(workdir, INIT_FILE),
    }


def demo_network(
    width: int = DEMO_WIDTH, depth: int = DEMO_DEPTH, inputs: int = 784, outputs: int = 1
) -> nn.Sequential:
    """Flatten -> depth x (Linear -> ReLU) -> Linear(width, outputs), PyTorch's default initialisation."""
    layers = [nn.Flatten()]
    for layer in range(depth):
        layers += [nn.Linear(inputs if layer == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def train_to_zero_error(
    model: nn.Module,
    data: Dataset,
    *,
    seed: int = 0,
    max_epochs: int = 300,
    batch_size: int = 100,
    lr: float = 1e-3,
    quiet: bool = False,
) -> int:
    """Adam until every training point is classified correctly; returns epochs. The loss is logistic
    for a single-logit model (labels 0/1) and cross-entropy for C logits (labels 0..C-1)."""
    generator = torch.Generator().manual_seed(seed)
    if output_dim(model, data.x[:1]) == 1:
        targets, bce = data.labels.to(torch.float32), nn.BCEWithLogitsLoss()

        def loss_fn(logits, target):
            return bce(logits.squeeze(-1), target)

    else:
        targets, loss_fn = data.labels.to(torch.int64), nn.CrossEntropyLoss()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    bar = progress(total=max_epochs, desc="training to zero train error", quiet=quiet, unit="epoch")
    try:
        for epoch in range(1, max_epochs + 1):
            model.train()
            for batch in torch.randperm(len(data), generator=generator).split(batch_size):
                optimiser.zero_grad()
                loss_fn(model(data.x[batch]), targets[batch]).backward()
                optimiser.step()
            model.eval()
            bar.update(1)
            if classification_error(model, data) == 0.0:
                return epoch
    finally:
        bar.close()
    raise ConvergenceError(f"the demo network did not reach zero training error in {max_epochs} epochs")


def save_exported(model: nn.Module, example_x: torch.Tensor, path: str) -> None:
    """Write ``model`` (in eval mode) to ``path`` as a ``torch.export`` program with a dynamic batch size.

    The program is serialised to memory first and then written atomically, so any file name works
    (torch.export.save itself expects a ``.pt2`` name) and a failed save leaves no partial file.
    """
    program = torch.export.export(model.eval(), (example_x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    write_atomically(path, lambda stream: stream.write(buffer.getvalue()), binary=True)


def run_demo(*, m: int = 1000, seed: int = 0, delta: float = 0.05, workdir: str = "pacbayes-demo", quiet: bool = False):
    """Train, save, reload and certify; returns (report, path of the saved model, epochs trained)."""
    checks.sample_size(m, "m")  # the exported program's batch size is dynamic only from 2 examples on
    torch.manual_seed(seed)
    train = take(binarise(load_dataset("mnist-embedded", split="train")), m, seed=seed)
    test = load_dataset("mnist-embedded", split="test")
    model = demo_network()
    os.makedirs(workdir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(workdir, INIT_FILE))  # prior mean for dziugaite-roy
    epochs = train_to_zero_error(model, train, seed=seed, quiet=quiet)
    path = os.path.join(workdir, MODEL_FILE)
    save_exported(model, train.x[:2], path)
    reloaded = load_model(path)
    report = certify(reloaded, train, test, CertifyOptions(delta=delta, seed=seed, quiet=quiet))
    return report, path, epochs

"""``pacbayes demo``: train a small fully connected ReLU net on mnist-embedded and certify it.

The whole product on its default data: binarised MNIST (digits 0-4 vs 5-9), m training points
from the embedded train split, a depth-2 ReLU net with one logit trained by Adam to zero training
error (seeded), saved as TorchScript, loaded back from the file like any user's model, and
certified with the marginal-likelihood bound against the 5,000-image embedded test split. The
initial weights are saved too (``init.pt``), as the prior mean for ``--bounds dziugaite-roy --init``.
"""

import os

import torch
from torch import nn

from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import Dataset, binarise, load_dataset, take
from pacbayes.errors import ConvergenceError
from pacbayes.models import classification_error, load_model
from pacbayes.progress import progress

DEMO_WIDTH = 512
DEMO_DEPTH = 2


def demo_network(width: int = DEMO_WIDTH, depth: int = DEMO_DEPTH, inputs: int = 784) -> nn.Sequential:
    """Flatten -> depth x (Linear -> ReLU) -> Linear(width, 1), PyTorch's default initialisation."""
    layers = [nn.Flatten()]
    for layer in range(depth):
        layers += [nn.Linear(inputs if layer == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, 1))
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
    """Adam on the logistic loss until every training point is classified correctly; returns epochs."""
    generator = torch.Generator().manual_seed(seed)
    targets = data.labels.to(torch.float32)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    bar = progress(total=max_epochs, desc="training to zero train error", quiet=quiet, unit="epoch")
    try:
        for epoch in range(1, max_epochs + 1):
            model.train()
            for batch in torch.randperm(len(data), generator=generator).split(batch_size):
                optimiser.zero_grad()
                loss_fn(model(data.x[batch]).squeeze(-1), targets[batch]).backward()
                optimiser.step()
            model.eval()
            bar.update(1)
            if classification_error(model, data) == 0.0:
                return epoch
    finally:
        bar.close()
    raise ConvergenceError(f"the demo network did not reach zero training error in {max_epochs} epochs")


def run_demo(*, m: int = 1000, seed: int = 0, delta: float = 0.05, workdir: str = "pacbayes-demo", quiet: bool = False):
    """Train, save, reload and certify; returns (report, path of the saved model, epochs trained)."""
    torch.manual_seed(seed)
    train = take(binarise(load_dataset("mnist-embedded", split="train")), m, seed=seed)
    test = load_dataset("mnist-embedded", split="test")
    model = demo_network()
    os.makedirs(workdir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(workdir, "init.pt"))  # prior mean for dziugaite-roy
    epochs = train_to_zero_error(model, train, seed=seed, quiet=quiet)
    path = os.path.join(workdir, "model.pt")
    torch.jit.script(model).save(path)
    reloaded = load_model(path)
    report = certify(reloaded, train, test, CertifyOptions(delta=delta, seed=seed, quiet=quiet))
    return report, path, epochs

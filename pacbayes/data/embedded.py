"""``mnist-embedded``: MNIST's 10,000-image test split, shipped inside the package.

Source: the original idx files t10k-images-idx3-ubyte.gz / t10k-labels-idx1-ubyte.gz of the MNIST
database (Y. LeCun, C. Cortes, C. J. C. Burges), licensed CC BY-SA 3.0 (see mnist/LICENSE.txt).

Splits: ``split=None`` gives all 10,000 images in file order. ``"train"`` and ``"test"`` are the
first and last 5,000 positions of ``numpy.random.RandomState(0).permutation(10000)``; RandomState's
stream is frozen (NEP 19), so the split is the same on every numpy version. The 10,000 images are
pairwise distinct, so the two halves share no image.
"""

from functools import lru_cache
from importlib import resources

import numpy as np

from pacbayes.data.dataset import Dataset, from_arrays
from pacbayes.data.idx import read_idx
from pacbayes.errors import InputError

NAME = "mnist-embedded"
SPLIT_SEED = 0
TRAIN_SIZE = 5000
IMAGES_FILE = "t10k-images-idx3-ubyte.gz"
LABELS_FILE = "t10k-labels-idx1-ubyte.gz"


def load_mnist_embedded(split=None) -> Dataset:
    """The embedded MNIST images (1 x 28 x 28, pixels in [0, 1]) with their digit labels 0..9."""
    images, labels = _raw_arrays()
    index = embedded_split_indices(split)
    info = {
        "source": f"pacbayes/data/mnist/{IMAGES_FILE}",
        "format": "idx (embedded)",
        "split": split,
        "split_seed": SPLIT_SEED if split is not None else None,
        "licence": "MNIST, CC BY-SA 3.0 (LeCun, Cortes, Burges)",
    }
    return from_arrays(images[index], labels[index], name=NAME, info=info)


def embedded_split_indices(split) -> np.ndarray:
    """Positions in the embedded files of ``split``: None (all, in file order), "train" or "test"."""
    images, _ = _raw_arrays()
    n = images.shape[0]
    if split is None:
        return np.arange(n)
    order = np.random.RandomState(SPLIT_SEED).permutation(n)
    if split == "train":
        return np.sort(order[:TRAIN_SIZE])
    if split == "test":
        return np.sort(order[TRAIN_SIZE:])
    raise InputError(f"unknown split {split!r} for {NAME}; use 'train', 'test' or none")


@lru_cache(maxsize=1)
def _raw_arrays():
    folder = resources.files("pacbayes.data") / "mnist"
    with resources.as_file(folder / IMAGES_FILE) as images_path, resources.as_file(folder / LABELS_FILE) as labels_path:
        images, labels = read_idx(images_path), read_idx(labels_path)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels

"""Data for the bounds: the embedded MNIST default, users' files, binary tasks, subsets.

Everything returns a :class:`Dataset` whose ``info`` records where the data came from and what was
done to it. Data is the lowest layer: it imports nothing from kernels, evidence or bounds.
"""

from pacbayes.data.dataset import Dataset, from_arrays
from pacbayes.data.embedded import NAME as EMBEDDED_NAME
from pacbayes.data.formats import load_dataset
from pacbayes.data.idx import read_idx
from pacbayes.data.labels import DEFAULT_NEGATIVE_CLASSES, apply_label_map, binarise, corrupt_labels, signs
from pacbayes.data.normalise import MNIST_MEAN_STD, normalise
from pacbayes.data.subsets import certified_subset, check_disjoint, take

__all__ = [
    "DEFAULT_NEGATIVE_CLASSES",
    "Dataset",
    "EMBEDDED_NAME",
    "MNIST_MEAN_STD",
    "apply_label_map",
    "binarise",
    "certified_subset",
    "check_disjoint",
    "corrupt_labels",
    "from_arrays",
    "load_dataset",
    "normalise",
    "read_idx",
    "signs",
    "take",
]

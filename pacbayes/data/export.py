"""A data set as the arrays ``pacbayes kernel`` and ``pacbayes evidence`` read, and its summary.

:func:`export_arrays` writes inputs (float64) and labels (class indices, or -1/+1 signs after
binarising as certify does) to .npy files; :func:`summary` says what pacbayes reads from a data set.
"""

from typing import Any

import torch

from pacbayes.data.arrays import save_npy
from pacbayes.data.dataset import Dataset
from pacbayes.data.labels import binarise as binarise_labels
from pacbayes.data.labels import signs
from pacbayes.data.subsets import take


def summary(dataset: Dataset) -> dict[str, Any]:
    """Name, size, input shape, classes (original labels) with their counts, value range and info."""
    counts = [int(c) for c in dataset.labels.bincount(minlength=dataset.num_classes)]
    return {
        "name": dataset.name,
        "n": len(dataset),
        "shape": list(dataset.x.shape[1:]),
        "classes": [list(c) if isinstance(c, tuple) else c for c in dataset.classes],
        "class_counts": counts,
        "x_min": float(dataset.x.min()),
        "x_max": float(dataset.x.max()),
        "info": dataset.info,
    }


def summary_text(record: dict[str, Any]) -> str:
    """A :func:`summary` for people: size and range, classes with counts, then each info entry."""
    lines = [
        f"{record['name']}: {record['n']} examples of shape {tuple(record['shape'])}, "
        f"values in [{record['x_min']:g}, {record['x_max']:g}]",
        "classes (original label: count): "
        + ", ".join(f"{c}: {n}" for c, n in zip(record["classes"], record["class_counts"], strict=False)),
    ]
    return "\n".join(lines + [f"{key}: {value}" for key, value in record["info"].items()])


def export_arrays(
    dataset: Dataset,
    x_path: str,
    labels_path: str,
    *,
    m: int | None = None,
    seed: int = 0,
    binarise: bool = False,
    flatten: bool = False,
) -> tuple[Dataset, tuple[int, ...]]:
    """Write ``dataset``'s inputs to ``x_path`` (float64; (n, d) with ``flatten``) and labels to
    ``labels_path`` (int64 class indices, or with ``binarise`` float64 -1/+1 signs), each to exactly that
    path. ``m`` draws a seeded subset after binarising, as certify draws it. Returns (dataset written,
    input array shape)."""
    if binarise:
        dataset = binarise_labels(dataset)
    if m is not None:
        dataset = take(dataset, m, seed=seed)
    x = dataset.x.to(dtype=torch.float64).numpy()
    if flatten:
        x = x.reshape(len(dataset), -1)
    labels = (signs(dataset.labels) if binarise else dataset.labels).numpy()
    save_npy(x_path, x)
    save_npy(labels_path, labels)
    return dataset, x.shape

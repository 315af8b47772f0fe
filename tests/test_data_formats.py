"""pacbayes.data file formats: idx (gz and raw), torchvision layout, CIFAR-10 batches, npz, pt.

Every fixture is written here byte by byte (struct / pickle / numpy.savez / torch.save) from a
small random array, and the loaded Dataset is compared with that array.
"""

import gzip
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from pacbayes.data import Dataset, from_arrays, load_dataset, read_idx
from pacbayes.errors import InputError


def write_idx(path, array, compress=False):
    """The idx format by hand: 0, 0, type code, ndim, big-endian uint32 dims, big-endian data."""
    codes = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with open(path, "wb") as handle:
        handle.write(gzip.compress(payload) if compress else payload)


def synthetic_images(n, seed, shape=(28, 28)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


def write_mnist_dir(folder, compress, n_train=12, n_test=7, separator="-"):
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if compress else ""
    arrays = {}
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_images(n, seed)
        write_idx(os.path.join(folder, f"{prefix}-images{separator}idx3-ubyte{suffix}"), images, compress)
        write_idx(os.path.join(folder, f"{prefix}-labels{separator}idx1-ubyte{suffix}"), labels, compress)
        arrays[prefix] = (images, labels)
    return arrays


def assert_matches(ds, images, labels):
    assert isinstance(ds, Dataset)
    json.dumps(ds.info)
    assert ds.x.dtype == torch.float32 and ds.labels.dtype == torch.int64
    expected = torch.from_numpy(images.astype(np.float32) / 255.0)
    if expected.dim() == 3:
        expected = expected.unsqueeze(1)
    assert torch.equal(ds.x, expected)
    values = torch.tensor([ds.classes[i] for i in ds.labels.tolist()])
    assert torch.equal(values, torch.from_numpy(labels.astype(np.int64)))
    assert list(ds.classes) == sorted(set(labels.tolist()))


@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32"])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips(tmp_path, dtype, compress):
    array = (np.arange(2 * 3 * 5) * 7 % 251).astype(dtype).reshape(2, 3, 5)
    path = tmp_path / "a.idx"
    write_idx(path, array, compress)
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype) and np.array_equal(result, array)


def test_read_idx_rejects_truncated_corrupt_and_missing(tmp_path):
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    path = tmp_path / "a.idx"
    write_idx(path, array)
    raw = path.read_bytes()
    (tmp_path / "short").write_bytes(raw[:-1])
    (tmp_path / "long").write_bytes(raw + b"\0")
    (tmp_path / "header").write_bytes(raw[:9])
    (tmp_path / "magic").write_bytes(b"\x01" + raw[1:])
    (tmp_path / "type").write_bytes(raw[:2] + b"\x07" + raw[3:])
    (tmp_path / "gz").write_bytes(gzip.compress(raw)[:-12])
    for name, words in [
        ("short", "truncated"),
        ("long", "truncated"),
        ("header", "truncated"),
        ("magic", "not an idx"),
        ("type", "element type"),
        ("gz", "gzip"),
        ("missing", "no such file"),
    ]:
        with pytest.raises(InputError, match=words):
            read_idx(tmp_path / name)


@pytest.mark.parametrize("compress,separator", [(False, "-"), (True, "-"), (True, ".")])
def test_mnist_idx_directory_splits(tmp_path, compress, separator):
    arrays = write_mnist_dir(tmp_path, compress, separator=separator)
    train = load_dataset(str(tmp_path), split="train")
    test = load_dataset(str(tmp_path), split="test")
    assert_matches(train, *arrays["train"])
    assert_matches(test, *arrays["t10k"])
    assert train.x.shape == (12, 1, 28, 28) and train.info["format"] == "idx"
    assert train.info["split"] == "train" and test.info["split"] == "test"
    with pytest.raises(InputError, match="both a train and a test"):
        load_dataset(str(tmp_path))


def test_single_split_directory_needs_no_split(tmp_path):
    images, labels = synthetic_images(5, 3)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    assert_matches(load_dataset(str(tmp_path)), images, labels)
    with pytest.raises(InputError, match="no train split"):
        load_dataset(str(tmp_path), split="train")


def test_torchvision_layout(tmp_path):
    arrays = write_mnist_dir(tmp_path / "FashionMNIST" / "raw", compress=False)
    assert_matches(load_dataset(str(tmp_path), split="test"), *arrays["t10k"])
    assert_matches(load_dataset(str(tmp_path / "FashionMNIST"), split="train"), *arrays["train"])
    write_mnist_dir(tmp_path / "MNIST" / "raw", compress=True)
    with pytest.raises(InputError, match="more than one data set"):
        load_dataset(str(tmp_path), split="train")


def test_idx_images_and_labels_of_different_lengths(tmp_path):
    images, labels = synthetic_images(5, 4)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:4])
    with pytest.raises(InputError, match="5 examples but y has 4"):
        load_dataset(str(tmp_path), split="train")


def write_cifar(folder, key_type=str):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(5)
    arrays = {}
    for name, n in [(f"data_batch_{i}", 3) for i in range(1, 6)] + [("test_batch", 4)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        batch = {
            key_type("data"): data,
            key_type("labels"): labels,
            key_type("batch_label"): "synthetic",
            key_type("filenames"): [b"a.png"] * n,
        }
        with open(os.path.join(folder, name), "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        arrays[name] = (data, np.array(labels))
    return arrays


@pytest.mark.parametrize("key_type", [str, lambda s: s.encode()])
def test_cifar_batches(tmp_path, key_type):
    arrays = write_cifar(tmp_path / "cifar-10-batches-py", key_type)
    train = load_dataset(str(tmp_path), split="train")
    images = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = np.concatenate([arrays[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert train.x.shape == (15, 3, 32, 32) and train.info["format"] == "cifar-10 python batches"
    assert_matches(train, images.reshape(-1, 3, 32, 32), labels)
    # channel layout: the first 1024 bytes of a row are the red plane, row-major
    assert float(train.x[0, 0, 1, 2]) == np.float32(images[0, 32 + 2]) / np.float32(255)
    assert float(train.x[0, 2, 0, 0]) == np.float32(images[0, 2048]) / np.float32(255)
    test = load_dataset(str(tmp_path / "cifar-10-batches-py"), split="test")
    assert_matches(test, arrays["test_batch"][0].reshape(-1, 3, 32, 32), arrays["test_batch"][1])


class _Payload:
    """A pickle that would create a directory when unpickled by an unrestricted unpickler."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_cifar_batch_that_runs_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    target = str(tmp_path / "pwned")
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({"data": _Payload(target), "labels": [0]}, handle, protocol=2)
    with pytest.raises(InputError, match="refusing to load posix.makedirs|refusing to load os"):
        load_dataset(str(folder), split="test")
    assert not os.path.exists(target)
    (folder / "data_batch_2").write_bytes(b"\x80\x02}q\x00(X")
    with pytest.raises(InputError, match="corrupt CIFAR-10 batch"):
        load_dataset(str(folder), split="train")


def test_npz_plain_and_split_keys(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.random((6, 4, 4, 3)).astype(np.float32)  # channels-last, floats taken as given
    y = np.array([3, 7, 3, 7, 7, 3])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.x.shape == (6, 3, 4, 4)
    assert torch.equal(ds.x, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert ds.classes == (3, 7) and ds.labels.tolist() == [0, 1, 0, 1, 1, 0]
    np.savez(tmp_path / "k.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    assert len(load_dataset(str(tmp_path / "k.npz"), split="test")) == 2
    with pytest.raises(InputError, match="choose one"):
        load_dataset(str(tmp_path / "k.npz"))
    np.savez(tmp_path / "bad.npz", images=x, y=y)
    with pytest.raises(InputError, match="needs arrays 'x' and 'y'"):
        load_dataset(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "obj.npz", x=np.array([None, 1], dtype=object), y=y[:2])
    with pytest.raises(InputError, match="not a readable .npz"):
        load_dataset(str(tmp_path / "obj.npz"))


def test_pt_tuple_and_dict(tmp_path):
    images, labels = synthetic_images(5, 7, shape=(6, 6))
    torch.save((torch.from_numpy(images), torch.from_numpy(labels).long()), tmp_path / "t.pt")
    assert_matches(load_dataset(str(tmp_path / "t.pt"), split="train"), images, labels)
    features = torch.randn(5, 9, dtype=torch.float64)
    torch.save({"x": features, "y": torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0])}, tmp_path / "d.pth")
    ds = load_dataset(str(tmp_path / "d.pth"))
    assert ds.x.shape == (5, 9) and torch.equal(ds.x, features.float())
    assert ds.classes == (-1, 1) and ds.labels.tolist() == [1, 0, 1, 1, 0]


def test_pt_refuses_pickled_objects_and_garbage(tmp_path):
    target = str(tmp_path / "pwned")
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump((_Payload(target), [0]), handle, protocol=2)
    with pytest.raises(InputError, match="weights_only=True"):
        load_dataset(str(tmp_path / "evil.pt"))
    assert not os.path.exists(target)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="weights_only=True"):
        load_dataset(str(tmp_path / "junk.pt"))
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(InputError, match="holds a Tensor"):
        load_dataset(str(tmp_path / "tensor.pt"))


@pytest.mark.parametrize(
    "x,y,words",
    [
        (np.zeros((3, 4)), np.array([0, 1]), "3 examples but y has 2"),
        (np.array([[0.0, np.nan], [1, 1]]), np.array([0, 1]), "NaN"),
        (np.array([[0.0, np.inf], [1, 1]]), np.array([0, 1]), "NaN or infinite"),
        (np.zeros((2, 4)), np.array([0.5, 1.0]), "must be integers"),
        (np.zeros((2, 4)), np.array([4, 4]), "at least 2 classes"),
        (np.zeros((2, 4)), np.eye(2), "1-D"),
        (np.zeros(4), np.arange(4), "one row per example"),
        (np.zeros((0, 4)), np.zeros(0, dtype=int), "empty"),
        (np.array([["a", "b"]]), np.array([0]), "numeric"),
    ],
)
def test_bad_arrays_are_refused(x, y, words):
    with pytest.raises(InputError, match=words):
        from_arrays(x, y, name="bad", info={})


def test_boolean_and_integer_pixels():
    mask = from_arrays(np.array([[True, False]]).repeat(2, 0), np.array([0, 1]), name="b", info={})
    assert mask.x.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    wide = from_arrays(torch.tensor([[255, 51]] * 2), torch.tensor([0, 1]), name="i", info={})
    assert wide.x.tolist() == [[1.0, np.float32(51) / np.float32(255)]] * 2


def test_unknown_paths_and_formats(tmp_path):
    with pytest.raises(InputError, match="no such file or directory"):
        load_dataset(str(tmp_path / "nope.npz"))
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(InputError, match="unknown data format"):
        load_dataset(str(tmp_path / "data.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="found no MNIST-style idx files"):
        load_dataset(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="unknown split"):
        load_dataset("mnist-embedded", split="validation")

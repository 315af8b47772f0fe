"""pacbayes.hashing: every digest the package writes keeps the value earlier versions wrote.

Ledgers, phase and report caches and provenance records from an earlier version are matched by
digest, so each is pinned here twice: to the hex value the code gave before the primitives moved to
pacbayes.hashing, and to a direct hashlib computation of the documented recipe.
"""

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from pacbayes import attempts, cache, hashing, provenance, report_cache
from pacbayes.certification import CertifyOptions
from pacbayes.data.dataset import from_arrays
from pacbayes.data.subsets import _row_keys
from pacbayes.subspace.evaluation import data_fingerprint

X = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
Y = torch.tensor([1, 0, 1])
TENSORS = "079f5939c02ece2a4fe3a54f9a317a7b0659b3a21a473ae4e88d273b647822c2"


def recipe(*tensors) -> str:
    """SHA-256 over numpy dtype.str, shape and C-ordered bytes of each tensor, written out (hex)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@pytest.fixture
def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))


def test_tensor_digest_is_pinned():
    assert hashing.tensors_sha256(X, Y) == TENSORS == recipe(X, Y)
    assert provenance.tensors_sha256(X, Y) == TENSORS
    assert hashing.tensors_sha256(X.double()) != hashing.tensors_sha256(X)  # the dtype counts
    assert hashing.tensors_sha256(X.reshape(4, 3)) != hashing.tensors_sha256(X)  # and the shape
    assert hashing.tensors_sha256(X.numpy()) == hashing.tensors_sha256(X)  # an array hashes as its tensor


def test_zero_dimensional_tensors_hash_as_one_element():
    # np.ascontiguousarray gives at least one dimension: cache keys of scalar inputs were written that way
    assert hashing.tensors_sha256(torch.tensor(3)) == hashing.tensors_sha256(torch.tensor([3]))


def test_file_digest_is_pinned(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"pacbayes\n" * 1000)
    pinned = "1b4fb26c05f89f2c7afd90eb9dd7c2f0e7edf0ef126fcce82bb63eb9178c9ede"
    assert hashing.file_sha256(path) == pinned == hashlib.sha256(path.read_bytes()).hexdigest()
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 8200)  # more than one read block
    assert hashing.file_sha256(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_attempt_keys_are_pinned(model):
    sample = attempts.sample_record(TENSORS, 3, 0.1, (3, 1))
    statement = {"sigma_w": 2.0, "grid": (1, 2.5)}
    key = attempts.attempt_key("marginal", sample, statement, model)
    assert key == "ef20ec5f369a97a1601a17c7b39dd46c8874648a16a5ce1a05664c0238f7a689"
    described = {
        "family": "marginal",
        "sample": sample,
        "statement": {"sigma_w": 2, "grid": [1, 2.5]},
        "architecture": attempts.architecture(model),
    }
    assert key == hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    weighted = attempts.attempt_key("subspace", sample, {"d": np.int64(5)}, model, weights=True)
    assert weighted == "291a187066064fd4015e698398606dfa56040d680c0f0cc8d96e05d81914aa9b"


def test_phase_cache_key_and_checksum_are_pinned():
    phase = cache.Phase("prior", 2, {"epochs": 3, "lr": 0.5}, {"x": X, "labels": Y}, {})
    key = phase.key()
    assert key == "a5021e04ada95486f35e4d2556b14a775ad8c65d2c77fb6ecf8f70128d39e6f8"
    digest = hashlib.sha256(f'pacbayes {cache.__version__}|prior v2|{{"epochs": 3, "lr": 0.5}}|'.encode())
    for label in ("labels", "x"):
        tensor = {"x": X, "labels": Y}[label]
        array = np.ascontiguousarray(tensor.numpy())
        digest.update(f"{label}|{array.dtype.str}{array.shape};".encode() + array.tobytes())
    assert key == digest.hexdigest()
    arrays = {"w": np.arange(5.0), "n": np.array([3], dtype=np.int64)}
    checksum = cache._checksum("abc", arrays).tobytes().hex()
    assert checksum == "aeeda1f7de971dbd67bec6fb1b4dfc9dc4b118d18ba970af3f91554f03acd9ad"


def test_subspace_data_fingerprint_is_pinned():
    pinned = "df22e093bedc5da437cbad8ea60389f78d6d2bcfdaa861d7d16a3537400a5f9b"
    assert data_fingerprint(X.double(), Y) == pinned
    assert pinned == hashlib.sha256(X.numpy().tobytes() + Y.numpy().tobytes()).hexdigest()


def test_row_keys_are_pinned():
    with pytest.warns(UserWarning):
        ds = from_arrays(X.numpy(), Y.numpy(), name="pins", info={})
    keys = [key.hex() for key in _row_keys(ds)]
    assert keys == [
        "af75c7d28517976b1b47a6b2948874da",
        "99039466f046927d514e7ffe83f80beb",
        "e1aca52253e7f7c44c28b9cd99a0e741",
    ]
    assert keys[0] == hashlib.blake2b(X[0].numpy().tobytes(), digest_size=16).hexdigest()
    negative_zero = np.array([[-0.0, 1.0]], dtype=np.float32) + np.float32(0.0)
    assert hashing.row_keys(negative_zero) == hashing.row_keys(np.array([[0.0, 1.0]], dtype=np.float32))


def test_report_cache_digests_are_pinned(model):
    report = {"a": float("inf"), "b": [1, 2.5], "c": {"z": None}}
    pinned = "8c5d7f42dec73cb4870d7b02dfc1b3b65e36ec1b8b5f345609bd9aec0f3279a9"
    stored = json.dumps({"a": None, "b": [1, 2.5], "c": {"z": None}}, sort_keys=True)  # JSON has no inf
    assert report_cache._checksum(report) == pinned == hashlib.sha256(stored.encode()).hexdigest()
    with pytest.warns(UserWarning):
        train = from_arrays(X.numpy(), Y.numpy(), name="pins", info={})
    options = CertifyOptions()
    silent = replace(options, quiet=True, marginal=replace(options.marginal, quiet=True))  # progress bars: not keyed
    expected = hashlib.sha256(f"pacbayes {report_cache.__version__}|Sequential|{model}|{silent!r}|".encode())
    parts = [(f"param:{name}|", tensor) for name, tensor in sorted(model.state_dict().items())]
    for label, tensor in parts:
        array = np.ascontiguousarray(tensor.numpy())
        expected.update(f"{label}{array.dtype.str}{array.shape};".encode() + array.tobytes())
    expected.update(f"train:{train.classes!r}|".encode())
    for label, tensor in (("train.x|", train.x), ("train.labels|", train.labels)):
        array = np.ascontiguousarray(tensor.numpy())
        expected.update(f"{label}{array.dtype.str}{array.shape};".encode() + array.tobytes())
    expected.update(b"test:none|")
    assert report_cache.content_key(model, train, None, options) == expected.hexdigest()


def test_canonical_json_sorts_keys_and_can_refuse_infinities():
    assert hashing.canonical_json({"b": 1, "a": [1.5]}) == b'{"a": [1.5], "b": 1}'
    assert hashing.json_sha256({"b": 1}) == hashlib.sha256(b'{"b": 1}').hexdigest()
    with pytest.raises(ValueError):
        hashing.canonical_json({"a": float("nan")}, allow_nan=False)

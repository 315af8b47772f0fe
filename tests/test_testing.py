"""assert_certified and its content-hash cache: values against certify, readable failures, corruption."""

import copy
import json
import os

import pytest
import torch
from tasks import MnistTask

from pacbayes import report_cache, testing
from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import take
from pacbayes.errors import InputError
from pacbayes.testing import CacheWarning, assert_certified, cached_report, content_key

M = 40
WIDTH = 32


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=M, n_test=200, seed=3, width=WIDTH)


@pytest.fixture(scope="module")
def direct(data, trained):
    report = certify(trained, *data, CertifyOptions(delta=0.05))
    return next(b for b in report.bounds if b.name == "marginal-certified")


def no_certify(*args, **kwargs):
    raise AssertionError("certify was called although a valid cache entry exists")


def entry_path(folder):
    (name,) = [n for n in os.listdir(folder) if n.endswith(".json")]
    return os.path.join(folder, name)


def test_passing_claim_returns_the_certify_value_and_is_cached(data, trained, direct, tmp_path, monkeypatch):
    train, test = data
    first = assert_certified(trained, train, test=test, at_most=1.0, cache_dir=tmp_path)
    assert first.certified and first.value == pytest.approx(direct.value, rel=1e-12)
    assert first.log_evidence == pytest.approx(direct.log_evidence, rel=1e-12)
    monkeypatch.setattr(report_cache, "certify", no_certify)
    second = assert_certified(trained, train, test=test, at_most=1.0, cache_dir=tmp_path)
    assert second == first


def test_failure_message_is_readable(data, trained, direct, tmp_path):
    train, test = data
    threshold = direct.value / 2
    with pytest.raises(AssertionError) as failure:
        assert_certified(trained, train, test=test, at_most=threshold, cache_dir=tmp_path)
    message = str(failure.value)
    assert f"{direct.value:.4f}" in message and f"{threshold:.4f}" in message
    assert "delta = 0.05" in message and "assumptions" in message and "realisable" in message
    assert f"m = {M}" in message


@pytest.mark.parametrize("damage", ["truncate", "flip-digit", "flip-byte", "other-key"])
def test_corrupt_entry_is_detected_and_recomputed(data, trained, direct, tmp_path, monkeypatch, damage):
    train, test = data
    options = CertifyOptions(bounds=("marginal",), delta=0.05)
    cached_report(trained, train, test, options, cache_dir=tmp_path)
    path = entry_path(tmp_path)
    raw = open(path, "rb").read()
    if damage == "truncate":
        broken = raw[: len(raw) // 2]
    elif damage == "flip-digit":  # still valid JSON, one number changed: only the checksum sees it
        entry = json.loads(raw)
        value = entry["report"]["bounds"][1]["value"]
        entry["report"]["bounds"][1]["value"] = value / 10
        broken = json.dumps(entry).encode()
    elif damage == "flip-byte":
        position = raw.index(b'"value"') + 10
        broken = raw[:position] + bytes([raw[position] ^ 0x01]) + raw[position + 1 :]
    else:
        entry = json.loads(raw)
        entry["key"] = "0" * 64
        broken = json.dumps(entry).encode()
    open(path, "wb").write(broken)
    calls = []
    real = report_cache.certify

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(report_cache, "certify", counting)
    with pytest.warns(CacheWarning, match="corrupt"):
        report, from_cache = cached_report(trained, train, test, options, cache_dir=tmp_path)
    assert not from_cache and calls == [1]
    assert testing.family_bound(report, "marginal")["value"] == pytest.approx(direct.value, rel=1e-12)
    # the rewritten entry is valid again
    again, from_cache = cached_report(trained, train, test, options, cache_dir=tmp_path)
    assert from_cache and again == report


def test_key_follows_content(data, trained):
    train, test = data
    options = CertifyOptions()
    key = content_key(trained, train, test, options)
    assert content_key(copy.deepcopy(trained), train, test, CertifyOptions(quiet=False)) == key
    nudged = copy.deepcopy(trained)
    with torch.no_grad():
        next(nudged.parameters())[0, 0] += 1e-6
    assert content_key(nudged, train, test, options) != key
    flipped = train.derive(labels=1 - train.labels)
    assert content_key(trained, flipped, test, options) != key
    assert content_key(trained, train, test, CertifyOptions(delta=0.01)) != key
    assert content_key(trained, train, take(test, 100, seed=0), options) != key


def test_bad_calls_are_refused(data, trained, tmp_path):
    train, test = data
    with pytest.raises(InputError, match="held-out"):
        assert_certified(trained, train, at_most=0.2, cache_dir=tmp_path)
    with pytest.raises(InputError, match="at_most"):
        assert_certified(trained, train, test=test, at_most=1.5, cache_dir=tmp_path)
    with pytest.raises(InputError, match="no certified bound of family"):
        testing.family_bound({"bounds": []}, "marginal")

"""Provenance in the report and `pacbayes verify`: hashes against hashlib, option round trips, exit codes."""

import hashlib
import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tasks import MnistTask

import pacbayes
from pacbayes import provenance, verification
from pacbayes.certification import CertifyOptions, certify
from pacbayes.cli import main
from pacbayes.demo import demo_network, save_exported
from pacbayes.errors import InputError
from pacbayes.families.marginal import MarginalSettings

M = 40
SEED = 1


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=M, n_test=100, seed=SEED, width=32)


@pytest.fixture(scope="module")
def report(data, trained):
    return certify(trained, *data, CertifyOptions(seed=SEED))


def test_provenance_records_versions_hashes_seeds_device_threads(data, report):
    train, test = data
    origin = report.to_dict()["provenance"]
    assert origin["package"] == "pacbayes" and origin["package_version"] == pacbayes.__version__
    assert (origin["torch_version"], origin["numpy_version"]) == (torch.__version__, np.__version__)
    assert origin["command_line"] == sys.argv and origin["seeds"] == {"seed": SEED}
    assert origin["device"] == "cpu" and origin["threads"]["intra_op"] == torch.get_num_threads()
    for role, ds in (("train", train), ("test", test)):  # hashlib over dtype, shape, bytes, written out here
        digest = hashlib.sha256()
        for array in (ds.x.numpy(), ds.labels.numpy()):
            digest.update(f"{array.dtype.str}{array.shape};".encode() + np.ascontiguousarray(array).tobytes())
        assert origin["data_sha256"][role] == digest.hexdigest()
    assert origin["options"]["seed"] == SEED and origin["options"]["marginal"]["jitter"] == 1e-6


def test_content_hash_sees_one_changed_label_and_ignores_the_copy(data):
    train = data[0]
    copy = train.derive(x=train.x.clone(), labels=train.labels.clone())
    assert provenance.dataset_sha256(copy) == provenance.dataset_sha256(train)
    flipped = train.labels.clone()
    flipped[0] = 1 - flipped[0]
    assert provenance.dataset_sha256(train.derive(labels=flipped)) != provenance.dataset_sha256(train)
    assert provenance.tensors_sha256(train.x.double()) != provenance.tensors_sha256(train.x)  # dtype counts


def test_options_round_trip_through_json():
    options = CertifyOptions(
        bounds=("marginal", "dziugaite-roy"),
        delta=0.01,
        m=30,
        seed=7,
        negative_classes=(0, 2, 4),
        holdout_candidates=3,
        marginal=MarginalSettings(jitter_grid=(1e-6, 1e-4), variant="mcallester"),
    )
    record = json.loads(json.dumps(provenance.options_record(options)))
    assert provenance.options_from_record(record, CertifyOptions) == options
    record["subspace"]["compressed"] = "<not recorded: CompressedModel>"
    with pytest.raises(InputError, match="subspace.compressed"):
        provenance.options_from_record(record, CertifyOptions)


def test_fixed_schema_keys_have_no_spaces(report):
    """Only the delta ledgers' share names (descriptive strings) may contain spaces."""
    spaced = []

    def walk(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                ledger = where.endswith("delta_ledger") or where.endswith(".delta")
                if " " in str(key) and not ledger and ".delta_ledger." not in where:
                    spaced.append(f"{where}.{key}")
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")

    walk(report.to_dict(), "")
    assert not spaced


@pytest.fixture(scope="module")
def certified_files(tmp_path_factory, data, trained):
    """A model file and the certify --out report of it, written with the command line of the console script."""
    folder = tmp_path_factory.mktemp("verify")
    model_path = folder / "model.pt"
    save_exported(trained, data[0].x[:2], str(model_path))
    args = ["certify", str(model_path), "--m", str(M), "--seed", str(SEED), "--out", str(folder / "r.json")]
    saved = sys.argv
    sys.argv = ["pacbayes", *args, "--quiet"]
    try:
        result = CliRunner().invoke(main, [*args, "--quiet"])
    finally:
        sys.argv = saved
    assert result.exit_code == 0, result.output
    return model_path, folder / "r.json"


def verify(*args):
    result = CliRunner().invoke(main, ["verify", *map(str, args)])
    return result.exit_code, result.output


def test_verify_matches_a_fresh_report(certified_files):
    model_path, report_path = certified_files
    code, output = verify(report_path, "--json")
    payload = json.loads(output)
    assert code == 0 and payload["matches"] and payload["first_mismatch"] is None
    statuses = {c["name"]: c["status"] for c in payload["checks"]}
    assert statuses["model_sha256"] == statuses["data_sha256_train"] == statuses["data_sha256_test"] == "match"
    recorded = json.loads(report_path.read_text())["provenance"]
    assert recorded["model_sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert recorded["model_file_kind"] == "export" and recorded["command_line"][1] == "certify"
    assert verify(report_path, "--quiet") == (0, "")


def test_verify_rerun_matches(certified_files):
    code, output = verify(certified_files[1], "--rerun", "--json")
    statuses = {c["name"]: c["status"] for c in json.loads(output)["checks"]}
    assert code == 0 and statuses["rerun_bound_marginal-certified"] == "match"


@pytest.mark.parametrize(
    "tamper, first",
    [
        (lambda r: r["delta_ledger"].update({"extra": 0.5}), "delta_ledger_sum"),
        (lambda r: r["baselines"].update(holdout_bound=r["baselines"]["holdout_bound"] * 0.9), "holdout_bound"),
        (lambda r: r.update(best_certified_bound=0.01), "best_certified_bound"),
        (lambda r: r["provenance"]["data_sha256"].update(test="0" * 64), "data_sha256_test"),
    ],
)
def test_verify_names_the_first_mismatch(certified_files, tmp_path, tamper, first):
    record = json.loads(certified_files[1].read_text())
    tamper(record)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(record))
    code, output = verify(path, "--json")
    assert code == 1 and json.loads(output)["first_mismatch"] == first


def test_verify_sees_another_model_file_and_a_rerun_that_differs(certified_files, tmp_path, data):
    model_path, report_path = certified_files
    torch.manual_seed(9)
    other = tmp_path / "other.pt"
    save_exported(demo_network(width=32), data[0].x[:2], str(other))
    code, output = verify(report_path, other)
    assert code == 1 and "MISMATCH: model_sha256" in output
    record = json.loads(report_path.read_text())
    record["test_error"] += 0.01
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(record))
    code, output = verify(changed, "--rerun", "--json")
    failed = [c["name"] for c in json.loads(output)["checks"] if c["status"] == "mismatch"]
    assert code == 1 and failed == ["holdout_bound", "rerun_test_error"]


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such report"), ("not json", "not a JSON report"), ("[1]", "one JSON object"), ("{}", "provenance")],
)
def test_verify_refuses_bad_input_with_exit_2(tmp_path, content, message):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    code, output = verify(path)
    assert code == 2 and message in output


def test_a_non_finite_number_matches_the_null_the_json_holds():
    assert verification._compare("x", None, float("inf"), 1e-6).status == "match"
    assert verification._compare("x", 0.5, float("nan"), 1e-6).status == "mismatch"
    assert verification._compare("x", 0.5, 0.5 * (1 + 1e-8), 1e-6).status == "match"
    assert verification._compare("x", 0.5, 0.5 * (1 + 1e-5), 1e-6).status == "mismatch"

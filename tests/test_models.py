"""pacbayes.models: every file kind round-trips; untrusted pickles, corrupt files, wrong kinds and
shape mismatches get one clear error; predictions match a direct computation."""

import os
import pickle
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

from pacbayes.data import from_arrays
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.layers import LAYERS, activation_name
from pacbayes.models import (
    ExportedModel,
    as_plain_sequential,
    classification_error,
    count_mistakes,
    labels_from_logits,
    load_model,
    model_file_kind,
    output_dim,
    predict_labels,
    reinitialise,
    zero_one_error,
)

ARCHITECTURE = textwrap.dedent("""
    import torch

    class SmallNet(torch.nn.Module):
        def __init__(self, width=6, outputs=1):
            super().__init__()
            self.hidden = torch.nn.Linear(4, width)
            self.out = torch.nn.Linear(width, outputs)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x.flatten(1))))
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's architecture module, importable as ``user_arch`` and at its .py path."""
    path = tmp_path / "user_arch.py"
    path.write_text(ARCHITECTURE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("user_arch", None)
    import user_arch

    yield user_arch, str(path)
    sys.modules.pop("user_arch", None)


def sequential(outputs=1):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, outputs)
    ).eval()


pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")

X = torch.randn(7, 1, 2, 2, generator=torch.Generator().manual_seed(1))


def assert_same_outputs(loaded, original):
    assert not loaded.training
    with torch.no_grad():
        assert torch.allclose(loaded(X), original(X), atol=1e-6)


def test_torchscript_scripted_and_traced(tmp_path):
    model = sequential()
    torch.jit.save(torch.jit.script(model), tmp_path / "s.pt")
    torch.jit.save(torch.jit.trace(model, X[:2]), tmp_path / "t.pt")
    for name in ("s.pt", "t.pt"):
        assert model_file_kind(tmp_path / name) == "torchscript"
        assert_same_outputs(load_model(tmp_path / name), model)


@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_export_any_batch_size(tmp_path, dynamic):
    model = sequential()
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(model, (X[:2],), dynamic_shapes=shapes), tmp_path / "e.pt2")
    assert model_file_kind(tmp_path / "e.pt2") == "export"
    loaded = load_model(tmp_path / "e.pt2")
    assert isinstance(loaded, ExportedModel) and loaded.static_batch == (None if dynamic else 2)
    assert_same_outputs(loaded, model)  # 7 inputs: three chunks of 2 and one padded chunk
    assert torch.equal(predict_labels(loaded, X), predict_labels(model, X))


def test_state_dict_with_architecture(tmp_path, user_module):
    module, file_path = user_module
    torch.manual_seed(3)
    model = module.SmallNet(width=5).eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, tmp_path / "ckpt.pt")
    assert model_file_kind(tmp_path / "w.pt") == "state_dict"
    for name, architecture in [("w.pt", "user_arch:SmallNet"), ("ckpt.pt", f"{file_path}:SmallNet")]:
        loaded = load_model(tmp_path / name, architecture=architecture, kwargs={"width": 5})
        assert_same_outputs(loaded, model)


def test_state_dict_errors(tmp_path, user_module):
    module, _ = user_module
    torch.save(module.SmallNet(width=5).state_dict(), tmp_path / "w.pt")
    path = tmp_path / "w.pt"
    cases = [
        ({}, "holds a state_dict .* give its architecture"),
        ({"architecture": "user_arch:SmallNet"}, r"shape mismatch .*hidden.weight \(5, 4\) vs \(6, 4\)"),
        ({"architecture": "user_arch:SmallNet", "kwargs": {"width": 5, "outputs": 2}}, "out.weight"),
        ({"architecture": "pacbayes_missing_mod:Net"}, "cannot import architecture"),
        ({"architecture": "user_arch:Nope"}, "cannot import architecture"),
        ({"architecture": "SmallNet"}, "must be 'module:Class'"),
        ({"architecture": "user_arch:SmallNet", "kwargs": {"depth": 2}}, "cannot build .*TypeError"),
        ({"architecture": "user_arch:SmallNet", "kwargs": [5]}, "kwargs must be a dict"),
        ({"architecture": "torch:zeros", "kwargs": {"size": [2]}}, "is a builtin_function_or_method"),
        (
            {"architecture": "torch.nn:Linear", "kwargs": {"in_features": 4, "out_features": 1}},
            "missing keys: weight, bias; unexpected keys: hidden.weight",
        ),
    ]
    for arguments, words in cases:
        with pytest.raises(ModelLoadError, match=words):
            load_model(path, **arguments)
    torch.jit.save(torch.jit.script(sequential()), tmp_path / "s.pt")
    with pytest.raises(ModelLoadError, match="carries its own architecture"):
        load_model(tmp_path / "s.pt", architecture="user_arch:SmallNet")


def test_pickled_module_needs_trust(tmp_path, user_module):
    module, _ = user_module
    model = module.SmallNet().eval()
    torch.save(model, tmp_path / "full.pt")
    with pytest.raises(ModelLoadError, match="runs code from the file: pass --trust-pickle only if you trust"):
        load_model(tmp_path / "full.pt")
    assert model_file_kind(tmp_path / "full.pt") == "pickled module"
    assert_same_outputs(load_model(tmp_path / "full.pt", trust_pickle=True), model)
    torch.save({"x": 1, "obj": model}, tmp_path / "dict.pt")
    with pytest.raises(ModelLoadError, match="unpickles to a dict"):
        load_model(tmp_path / "dict.pt", trust_pickle=True)


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_untrusted_pickle_does_not_run(tmp_path):
    target = str(tmp_path / "pwned")
    torch.save({"weight": _Payload(target)}, tmp_path / "evil.pt")
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        load_model(tmp_path / "evil.pt")
    assert not os.path.exists(target)
    with open(tmp_path / "legacy.pkl", "wb") as handle:  # a plain (non-zip) pickle
        pickle.dump(_Payload(target), handle, protocol=2)
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        load_model(tmp_path / "legacy.pkl")
    assert not os.path.exists(target)


def test_corrupt_empty_and_wrong_kind_files(tmp_path):
    torch.jit.save(torch.jit.script(sequential()), tmp_path / "s.pt")
    raw = (tmp_path / "s.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("definitely not a model\n")
    np.savez(tmp_path / "data.npz", x=np.zeros(3))
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"lr": 0.1}, tmp_path / "config.pt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    cases = [
        ("truncated.pt", "not a readable model file"),
        ("empty.pt", "empty"),
        ("text.pt", "not a readable model file"),
        ("data.npz", "not a readable model file"),
        ("tensor.pt", "holds a Tensor, not a model"),
        ("config.pt", "holds a dict, not a model"),
        ("other.zip", "not a readable model file"),
        ("missing.pt", "no such model file"),
    ]
    for name, words in cases:
        with pytest.raises(ModelLoadError, match=words):
            load_model(tmp_path / name)


def test_shape_mismatch_is_one_clear_line(tmp_path):
    model = sequential()
    wrong = torch.zeros(3, 1, 3, 3)
    torch.jit.save(torch.jit.script(model), tmp_path / "s.pt")
    torch.export.save(torch.export.export(model, (X[:2],)), tmp_path / "e.pt2")
    for candidate, words in [
        (model, "4 features"),
        (load_model(tmp_path / "s.pt"), "4 features"),
        (load_model(tmp_path / "e.pt2"), r"input \(n, 1, 2, 2\)"),
    ]:
        with pytest.raises(InputError, match=r"examples have shape \(1, 3, 3\) but the model expects.*" + words) as err:
            predict_labels(candidate, wrong)
        assert "\n" not in str(err.value)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    with pytest.raises(InputError, match="3 channels"):
        predict_labels(conv, torch.zeros(2, 1, 5, 5))


def test_predictions_and_error_against_direct_computation():
    single, multi = sequential(1), sequential(3)
    with torch.no_grad():
        logits, scores = single(X)[:, 0], multi(X)
    assert torch.equal(predict_labels(single, X), (logits > 0).long())
    assert torch.equal(predict_labels(multi, X, batch_size=2), scores.argmax(1))
    assert output_dim(single, X) == 1 and output_dim(multi, X) == 3
    labels = np.array([0, 1, 1, 0, 1, 0, 0])
    ds = from_arrays(X.numpy(), labels, name="toy", info={})
    expected = float(np.mean((logits > 0).numpy().astype(int) != labels))
    assert classification_error(single, ds) == pytest.approx(expected, abs=0)
    with pytest.raises(InputError, match="3 outputs but toy has 2 classes"):
        classification_error(multi, ds)
    ten = from_arrays(X.numpy(), np.arange(7) % 4, name="four", info={})
    with pytest.raises(InputError, match="one output .* binarise"):
        classification_error(single, ten)


def test_double_precision_model_and_mode_restored():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1)).double()
    model.train()
    first, second = predict_labels(model, X), predict_labels(model, X)
    assert torch.equal(first, second) and model.training  # evaluated without dropout, mode restored
    with torch.no_grad():
        assert torch.equal(first, (model[2](X.double().flatten(1))[:, 0] > 0).long())


def test_bad_outputs_are_refused():
    for bad, words in [
        (torch.nn.Identity(), "output has shape"),
        (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1), torch.nn.Threshold(10.0, float("nan"))), "NaN"),
    ]:
        with pytest.raises(InputError, match=words):
            predict_labels(bad, X)


def test_as_plain_sequential_rebuilds_scripted_standard_layers():
    torch.manual_seed(2)
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, stride=2, padding=1, bias=False),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(3, 2, 1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Sigmoid()),
        torch.nn.Dropout(0.2),
        torch.nn.Identity(),
        torch.nn.Linear(4, 1),
    ).eval()
    images = torch.randn(5, 1, 8, 8)
    for model in (conv, sequential()):
        rebuilt = as_plain_sequential(torch.jit.script(model))
        assert type(rebuilt) is torch.nn.Sequential and not rebuilt.training
        assert [type(m) for m in rebuilt.modules()] == [type(m) for m in model.modules()]
        example = images if model is conv else X
        with torch.no_grad():
            assert torch.equal(rebuilt(example), model(example))
    assert as_plain_sequential(conv) is conv


def test_as_plain_sequential_leaves_what_it_cannot_rebuild(user_module):
    module, _ = user_module
    custom = torch.jit.script(module.SmallNet())
    assert as_plain_sequential(custom) is custom
    traced = torch.jit.trace(sequential(), X[:2])  # traced Flatten keeps no start_dim
    assert as_plain_sequential(traced) is traced
    scripted = torch.jit.script(sequential())
    assert as_plain_sequential(scripted, example_x=X) is not scripted
    assert as_plain_sequential(scripted, example_x=torch.zeros(2, 9)) is scripted


@pytest.mark.parametrize(
    "net",
    [
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)),
        torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(4, 1),
        ),
    ],
)
def test_export_programs_rebuild_to_equivalent_plain_sequentials(net, tmp_path):
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(2, 1, 28, 28),)), str(path))
    x = torch.randn(5, 1, 28, 28)
    rebuilt = as_plain_sequential(load_model(str(path)), example_x=x)
    assert isinstance(rebuilt, torch.nn.Sequential)
    assert [type(layer) for layer in rebuilt] == [type(layer) for layer in net]
    assert torch.equal(rebuilt(x), net(x))


def test_export_program_with_unknown_operation_is_left_alone(tmp_path):
    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.cos(x.flatten(1)).sum(dim=1, keepdim=True)

    path = tmp_path / "odd.pt2"
    torch.export.save(torch.export.export(Odd(), (torch.zeros(2, 1, 28, 28),)), str(path))
    loaded = load_model(str(path))
    assert as_plain_sequential(loaded) is loaded


# --- the one prediction path and the one re-initialiser -----------------------------------------


def test_labels_and_mistakes_from_logits_of_every_shape():
    one = torch.tensor([0.5, -1.0, 0.0])
    assert torch.equal(labels_from_logits(one), torch.tensor([1, 0, 0]))
    assert torch.equal(labels_from_logits(one[:, None]), torch.tensor([1, 0, 0]))
    assert torch.equal(labels_from_logits(torch.tensor([[0.0, 1.0], [2.0, 1.0]])), torch.tensor([1, 0]))
    assert count_mistakes(one, torch.tensor([1, 1, 0])) == 1
    with pytest.raises(InputError, match="one label per input"):
        count_mistakes(one, torch.tensor([1, 1]))
    single = sequential(1)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    assert zero_one_error(single, X, labels) == count_mistakes(single(X).detach(), labels) / len(labels)
    with pytest.raises(InputError, match="matching, non-empty"):
        zero_one_error(single, X, labels[:3])


def test_one_seeded_reinitialiser_for_priors_subspaces_and_kernels():
    from pacbayes.kernels import MonteCarloNNGP
    from pacbayes.stochastic.prior import reinitialised

    def net():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1))

    torch.manual_seed(7)
    fresh, trained = net(), net()
    state = torch.random.get_rng_state()
    again = reinitialise(trained, 7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), fresh.parameters(), strict=False))
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), reinitialised(trained, 7).values(), strict=False))
    mc = MonteCarloNNGP(trained, samples=2, seed=0)
    params, _ = mc._draw([7])
    drawn = reinitialise(trained.double(), 7)
    assert all(torch.equal(params[name][0], p) for name, p in drawn.named_parameters())

    class Bare(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

    with pytest.raises(InputError, match=r"the model itself \(Bare\).*no reset_parameters\(\).*do this"):
        reinitialise(Bare(), 0, remedy="do this")


def test_every_registered_layer_is_rebuilt_from_torchscript():
    for name, layer in LAYERS.items():
        if layer.role in ("container", "weighted"):
            continue
        arguments = {"AdaptiveAvgPool2d": (1,), "AvgPool2d": (2,)}.get(name, ())
        scripted = torch.jit.script(torch.nn.Sequential(layer.cls(*arguments)))
        rebuilt = as_plain_sequential(scripted)
        assert type(rebuilt[0]) is layer.cls, name
        assert activation_name(rebuilt[0]) == layer.activation

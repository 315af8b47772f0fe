"""certify on an --m subset of a larger training set: the report says what m covers; the refusal says how to fix it."""

import pytest
import torch
from torch import nn

from pacbayes.certification import CertifyOptions, certify
from pacbayes.data import from_arrays
from pacbayes.errors import InputError
from pacbayes.report import render_text


def _separator():
    net = nn.Linear(3, 1).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        net.bias.zero_()
    return net.eval()


def _data(net, n, seed, flipped=0):
    """n points labelled by ``net``'s sign (the first ``flipped`` labels reversed)."""
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        labels = (net(x)[:, 0] > 0).long()
    labels[:flipped] = 1 - labels[:flipped]
    return from_arrays(x.numpy(), labels.numpy(), name=f"points{seed}", info={})


def test_a_subset_of_the_training_set_is_said_to_cover_m_points():
    net = _separator()
    train, test = _data(net, 40, 0), _data(net, 30, 1)
    report = certify(net, train, test, CertifyOptions(m=12, seed=0))
    (note,) = report.notes
    assert "12 of the 40 training examples" in note and "hold-out bound is the one about MODEL" in note
    assert report.to_dict()["notes"] == [note]
    assert f"note: {note}" in render_text(report)
    assert certify(net, train, test, CertifyOptions(seed=0)).notes == []  # the whole set: nothing to say


def test_training_error_on_a_subset_names_the_remedies():
    net = _separator()
    train, test = _data(net, 40, 0, flipped=20), _data(net, 30, 1)
    with pytest.raises(InputError, match=r"--m drew 12 of the 40 .*certified_subset\(train, m=12, seed=0\)"):
        certify(net, train, test, CertifyOptions(m=12, seed=0))
    with pytest.raises(InputError, match="realisable") as whole:
        certify(net, train, test, CertifyOptions(seed=0))
    assert "--m" not in str(whole.value)

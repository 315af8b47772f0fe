"""Where the subspace starts: a seeded random theta0 (data-independent), or theta0 learned on a
held-out part of S (a data-dependent prior).

The compression bound's prior is 2^-l over messages around theta0, so theta0 must not depend on
the points the bound is computed on. With a prior split, S is cut by a seeded permutation into a
prior part, on which theta0 is trained (every parameter, from the seeded initialisation), and a
bound part, on which z is fitted, coded and certified. The prior is then a function of the prior
part only, which is independent of the bound part, and the bound holds for the bound part's size
(Ambroladze, Parrado-Hernandez & Shawe-Taylor 2007, "Tighter PAC-Bayes bounds", NeurIPS;
Dziugaite et al. 2021, "On the role of data in PAC-Bayes bounds", AISTATS; Lotfi et al. 2022,
NeurIPS, Section 4, data-dependent bounds). The bound part may be smaller than S, so the trade is
a better origin against fewer points.

An origin is a plain dict (it is saved in subspace files): ``{"kind": "seeded"}`` or
``{"kind": "data-dependent", "prior_split", "prior_points", "bound_points", "prior_fingerprint",
"epochs", "lr"}``; the split's permutation comes from the model's seed.
"""

import torch

from pacbayes import checks
from pacbayes.errors import InputError
from pacbayes.seeds import stream_generator
from pacbayes.subspace.evaluation import data_fingerprint

SEEDED = {"kind": "seeded"}


def is_data_dependent(origin: dict) -> bool:
    return origin.get("kind") == "data-dependent"


def split_indices(m: int, fraction: float, seed: int) -> tuple:
    """(prior indices, bound indices) of a seeded permutation of range(m), round(fraction m) prior."""
    m_prior = checks.prior_part_size(m, fraction)
    generator = stream_generator(seed, "prior-split")
    order = torch.randperm(int(m), generator=generator)
    return order[:m_prior], order[m_prior:]


def bound_part(origin: dict, seed: int, x: torch.Tensor, labels: torch.Tensor) -> tuple:
    """The points a bound around ``origin`` is computed on: all of (x, labels) for a seeded origin;
    for a learned one, the bound part of the same split, after checking that its prior part is
    exactly the data the origin was trained on (else the bound could reuse prior points)."""
    if not is_data_dependent(origin):
        return x, labels
    prior, rest = split_indices(len(labels), origin["prior_split"], seed)
    if data_fingerprint(x[prior], labels[prior]) != origin["prior_fingerprint"]:
        raise InputError(
            f"the subspace origin was learned on {origin['prior_points']} of the training points, and these data "
            "do not contain them at the same positions; pass the full training set it was trained with "
            "(the split is re-derived from the seed)"
        )
    return x[rest], labels[rest]


def describe(origin: dict) -> str:
    """One line for the report's assumptions."""
    if not is_data_dependent(origin):
        return "theta0, the projection (seed), d and the level grid were fixed before seeing the data"
    return (
        f"theta0 was learned on {origin['prior_points']} training points held out from the bound "
        f"({origin['epochs']} epochs of Adam at lr {origin['lr']:g} from the seeded start), and the projection "
        f"(seed), d and the level grid were fixed before seeing the other {origin['bound_points']}, "
        "on which the bound is computed"
    )

"""Bound forms for Gaussian stochastic networks: Dziugaite & Roy (2017) and PBB (Pérez-Ortiz et al. 2021).

The prior variance lambda is chosen from the grid lambda_j = c exp(-j / b), j = 1, 2, ...
(Dziugaite & Roy 2017, Section 4, "choosing lambda"). Statement j is given the failure probability
delta_j = 6 delta / (pi^2 j^2); since sum_j 1/j^2 = pi^2/6 the statements hold together with
probability >= 1 - delta, so the j that gives the smallest bound may be picked after training.
ln(1/delta_j) = ln(1/delta) + 2 ln j + ln(pi^2/6), which is the "2 ln(b ln(c/lambda))" term of their
B_RE (b ln(c/lambda) = j).

The training objectives accept plain floats or autograd tensors: they use only arithmetic and a
``.log()``/``.exp()`` method where the argument has one (torch tensors do), so the same formula
serves the optimiser and the tests, and this module never imports torch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol, TypeVar, overload

from pacbayes import checks
from pacbayes.errors import InputError

if TYPE_CHECKING:
    from typing import Self

    from typing_extensions import TypeIs

DR_GRID_C = 0.1
"""c of the lambda grid (Dziugaite & Roy 2017 use c = 0.1)."""
DR_GRID_B = 100.0
"""b of the lambda grid (Dziugaite & Roy 2017 use b = 100)."""


class TensorLike(Protocol):
    """What the training objectives use of an autograd tensor (``torch.Tensor`` has all of it)."""

    def log(self) -> Self: ...
    def exp(self) -> Self: ...
    def __neg__(self) -> Self: ...
    def __add__(self, other: float | Self, /) -> Self: ...
    def __radd__(self, other: float, /) -> Self: ...
    def __rsub__(self, other: float, /) -> Self: ...
    def __mul__(self, other: float | Self, /) -> Self: ...
    def __rmul__(self, other: float, /) -> Self: ...
    def __truediv__(self, other: float | Self, /) -> Self: ...
    def __rtruediv__(self, other: float, /) -> Self: ...
    def __pow__(self, exponent: float, /) -> Self: ...


T = TypeVar("T", bound=TensorLike)
"""A tensor type: the bound forms return it when any argument is one, and a float otherwise."""


def _is_tensor(x: object) -> TypeIs[TensorLike]:
    """True for an autograd tensor (it has callable ``log`` and ``exp`` methods).

    Numbers go through ``math``: an mpmath ``mpf`` has an ``exp`` attribute (its binary exponent, an
    int), so testing for the attribute alone would call an int.
    """
    return callable(getattr(x, "log", None)) and callable(getattr(x, "exp", None))


@overload
def _log(x: float) -> float: ...
@overload
def _log(x: T) -> T: ...
def _log(x: float | TensorLike) -> float | TensorLike:
    return x.log() if _is_tensor(x) else math.log(x)


@overload
def _exp(x: float) -> float: ...
@overload
def _exp(x: T) -> T: ...
def _exp(x: float | TensorLike) -> float | TensorLike:
    return x.exp() if _is_tensor(x) else math.exp(x)


def _grid(c: float, b: float) -> tuple[float, float]:
    c = checks.finite(c, "c")
    b = checks.finite(b, "b")
    if c <= 0.0 or b <= 0.0:
        raise InputError(f"the lambda grid needs c > 0 and b > 0, got c={c}, b={b}")
    return c, b


@overload
def grid_variance(j: float, c: float = DR_GRID_C, b: float = DR_GRID_B) -> float: ...
@overload
def grid_variance(j: T, c: float = DR_GRID_C, b: float = DR_GRID_B) -> T: ...
def grid_variance(j: float | TensorLike, c: float = DR_GRID_C, b: float = DR_GRID_B) -> float | TensorLike:
    """lambda_j = c exp(-j / b) (Dziugaite & Roy 2017, Section 4); j may be a float or a tensor."""
    c, b = _grid(c, b)
    return c * _exp(-j / b)


def grid_index(prior_variance: float, c: float = DR_GRID_C, b: float = DR_GRID_B) -> float:
    """The (real) grid position j = b ln(c / lambda) of a prior variance lambda > 0."""
    c, b = _grid(c, b)
    prior_variance = checks.finite(prior_variance, "prior_variance")
    if prior_variance <= 0.0:
        raise InputError(f"the prior variance must be > 0, got {prior_variance}")
    return b * math.log(c / prior_variance)


def grid_candidates(prior_variance: float, c: float = DR_GRID_C, b: float = DR_GRID_B) -> tuple[int, ...]:
    """The integer grid points j >= 1 next to lambda: (floor, ceil) of b ln(c/lambda), at least 1."""
    j = grid_index(prior_variance, c, b)
    low = max(1, math.floor(j))
    return tuple(sorted({low, max(1, math.ceil(j))}))


def series_delta(k: int, delta: float) -> float:
    """delta_k = 6 delta / (pi^2 k^2), the share of statement k >= 1 in a countable union bound.

    sum_{k>=1} delta_k = delta (Basel series). Used for the lambda grid (k = j) and for repeated
    attempts (k = attempt number), so no maximum needs to be declared in advance.
    """
    delta = checks.delta(delta)
    k = checks.sample_size(k, name="k", minimum=1)
    return 6.0 * delta / (math.pi**2 * k * k)


@overload
def _check_index(j: float) -> float: ...
@overload
def _check_index(j: T) -> T: ...
def _check_index(j: float | TensorLike) -> float | TensorLike:
    if not _is_tensor(j):
        j = checks.finite(j, "j")
        if j < 1.0:
            raise InputError(f"the grid index j must be >= 1 (lambda <= c exp(-1/b)), got {j}")
    return j


@overload
def _grid_cost(j: float) -> float: ...
@overload
def _grid_cost(j: T) -> T: ...
def _grid_cost(j: float | TensorLike) -> float | TensorLike:
    """ln(1/delta_j) - ln(1/delta) = 2 ln j + ln(pi^2 / 6): the nats grid point j pays (:func:`series_delta`)."""
    return 2.0 * _log(j) + math.log(math.pi**2 / 6.0)


@overload
def langford_seeger_complexity(kl: float, m: int, delta: float) -> float: ...
@overload
def langford_seeger_complexity(kl: T, m: int, delta: float) -> T: ...
def langford_seeger_complexity(kl: float | TensorLike, m: int, delta: float) -> float | TensorLike:
    """(KL(Q||P) + ln(m / delta)) / (m - 1): the right side of Langford & Seeger's (2001) PAC-Bayes-kl
    bound kl(hat e || e) <= this, for a prior fixed in advance (Dziugaite & Roy 2017, eq. 4).
    ``kl`` may be a tensor (for training)."""
    m = checks.sample_size(m)
    delta = checks.delta(delta)
    return (kl + math.log(m / delta)) / (m - 1)


@overload
def maurer_complexity(kl: float, m: int, delta: float) -> float: ...
@overload
def maurer_complexity(kl: T, m: int, delta: float) -> T: ...
def maurer_complexity(kl: float | TensorLike, m: int, delta: float) -> float | TensorLike:
    """(KL(Q||P) + ln(2 sqrt(m) / delta)) / m: Maurer's (2004) PAC-Bayes-kl right side for a prior fixed
    in advance (m >= 8); the C of Pérez-Ortiz et al. (2021), eqs. 6-8. ``kl`` may be a tensor."""
    m = checks.sample_size(m, minimum=8)
    delta = checks.delta(delta)
    return (kl + math.log(2.0 * math.sqrt(m) / delta)) / m


@overload
def dziugaite_roy_complexity(kl: float, m: int, delta: float, j: float) -> float: ...
@overload
def dziugaite_roy_complexity(kl: T, m: int, delta: float, j: T | float) -> T: ...
@overload
def dziugaite_roy_complexity(kl: float, m: int, delta: float, j: T) -> T: ...
def dziugaite_roy_complexity(kl: float | TensorLike, m: int, delta: float, j: float | TensorLike) -> float | TensorLike:
    """B_RE of Dziugaite & Roy (2017), Section 3-4, with lambda = lambda_j:

        B_RE = (KL(Q||P) + 2 ln j + ln(pi^2 m / (6 delta))) / (m - 1),

    the right side of Langford & Seeger's PAC-Bayes-kl (kl(hat e || e) <= (KL + ln(m/delta_j))/(m-1))
    at delta_j = 6 delta / (pi^2 j^2). ``kl`` and ``j`` may be tensors (for training).
    """
    return langford_seeger_complexity(kl + _grid_cost(_check_index(j)), m, delta)


@overload
def dziugaite_roy_objective(surrogate_risk: float, kl: float, m: int, delta: float, j: float) -> float: ...
@overload
def dziugaite_roy_objective(surrogate_risk: T, kl: T | float, m: int, delta: float, j: T | float) -> T: ...
@overload
def dziugaite_roy_objective(surrogate_risk: float, kl: T, m: int, delta: float, j: T | float) -> T: ...
@overload
def dziugaite_roy_objective(surrogate_risk: float, kl: float, m: int, delta: float, j: T) -> T: ...
def dziugaite_roy_objective(
    surrogate_risk: float | TensorLike, kl: float | TensorLike, m: int, delta: float, j: float | TensorLike
) -> float | TensorLike:
    """Dziugaite & Roy (2017), eq. (6): surrogate risk + sqrt(B_RE / 2) (Pinsker relaxation of kl^-1)."""
    return surrogate_risk + (dziugaite_roy_complexity(kl, m, delta, j) / 2.0) ** 0.5


@overload
def pbb_complexity(kl: float, m: int, delta: float, j: float) -> float: ...
@overload
def pbb_complexity(kl: T, m: int, delta: float, j: T | float) -> T: ...
@overload
def pbb_complexity(kl: float, m: int, delta: float, j: T) -> T: ...
def pbb_complexity(kl: float | TensorLike, m: int, delta: float, j: float | TensorLike) -> float | TensorLike:
    """(KL + ln(2 sqrt(m) / delta_j)) / m: Maurer's PAC-Bayes-kl right side at grid point j.

    This is the term written (KL + ln(2 sqrt(n)/delta)) / n in Pérez-Ortiz et al. (2021), eqs. 6-8,
    with delta replaced by delta_j = 6 delta / (pi^2 j^2) for the lambda-grid union bound.
    """
    return maurer_complexity(kl + _grid_cost(_check_index(j)), m, delta)


@overload
def pbb_classic(surrogate_risk: float, complexity: float) -> float: ...
@overload
def pbb_classic(surrogate_risk: T, complexity: T | float) -> T: ...
@overload
def pbb_classic(surrogate_risk: float, complexity: T) -> T: ...
def pbb_classic(surrogate_risk: float | TensorLike, complexity: float | TensorLike) -> float | TensorLike:
    """f_classic (Pérez-Ortiz et al. 2021, eq. 7; McAllester 1999): risk + sqrt(C / 2)."""
    return surrogate_risk + (complexity / 2.0) ** 0.5


@overload
def pbb_quad(surrogate_risk: float, complexity: float) -> float: ...
@overload
def pbb_quad(surrogate_risk: T, complexity: T | float) -> T: ...
@overload
def pbb_quad(surrogate_risk: float, complexity: T) -> T: ...
def pbb_quad(surrogate_risk: float | TensorLike, complexity: float | TensorLike) -> float | TensorLike:
    """f_quad (Pérez-Ortiz et al. 2021, eq. 6): (sqrt(risk + C/2) + sqrt(C/2))^2.

    The largest p with (p - q)^2 / (2p) <= C, i.e. kl^-1 relaxed by kl(q||p) >= (p - q)^2 / (2p).
    """
    half = complexity / 2.0
    return ((surrogate_risk + half) ** 0.5 + half**0.5) ** 2


@overload
def pbb_lambda(surrogate_risk: float, complexity: float, tradeoff: float) -> float: ...
@overload
def pbb_lambda(surrogate_risk: T, complexity: T | float, tradeoff: T | float) -> T: ...
@overload
def pbb_lambda(surrogate_risk: float, complexity: T, tradeoff: T | float) -> T: ...
@overload
def pbb_lambda(surrogate_risk: float, complexity: float, tradeoff: T) -> T: ...
def pbb_lambda(
    surrogate_risk: float | TensorLike, complexity: float | TensorLike, tradeoff: float | TensorLike
) -> float | TensorLike:
    """f_lambda (Pérez-Ortiz et al. 2021, eq. 8; Thiemann et al. 2017, Theorem 3), tradeoff t in (0, 2):

    risk / (1 - t/2) + C / (t (1 - t/2)).
    """
    if not _is_tensor(tradeoff):
        tradeoff = checks.finite(tradeoff, "tradeoff")
        if not 0.0 < tradeoff < 2.0:
            raise InputError(f"the f_lambda tradeoff must lie in (0, 2), got {tradeoff}")
    scale = 1.0 - tradeoff / 2.0
    return surrogate_risk / scale + complexity / (tradeoff * scale)


def pbb_lambda_tradeoff(surrogate_risk: float, complexity: float) -> float:
    """The t in (0, 1] minimising f_lambda for fixed risk and C (Thiemann et al. 2017, eq. 8):

        t* = 2 / (sqrt(2 risk / C + 1) + 1).

    PBB alternates gradient steps on Q with this closed-form update of t.
    """
    surrogate_risk = checks.nonnegative(surrogate_risk, "surrogate_risk")
    complexity = checks.finite(complexity, "complexity")
    if complexity <= 0.0:
        raise InputError(f"the complexity term must be > 0, got {complexity}")
    return 2.0 / (math.sqrt(2.0 * surrogate_risk / complexity + 1.0) + 1.0)

"""One line saying why a stochastic-network certificate is vacuous, and which option helps.

A bound at or above chance (1 - 1/classes: 0.5 for a binary task) says nothing. The certificate
kl^-1(kl^-1(hat e_n, ln(1/delta_sc)/n), (KL + ln(2 sqrt(m)/delta))/m) has three ingredients, and the
line names the one to blame, by recomputing the bound without it:

- the Monte Carlo budget: with hat e(Q) = hat e_n (infinitely many draws) the bound would be below
  chance, so the n draws' loose bound on hat e(Q) is to blame;
- the KL: the bound at KL = 0 would be below chance, so the posterior is too far from the prior;
- the stochastic net's own error: vacuous even at KL = 0, because the sampled train error is too
  high (the posterior's noise swamps the network, or the labels are random).
"""

from pacbayes import bounds

REMEDY = {
    "around-model": "start the posterior at the prior (--posterior-start prior), best with a learned prior "
    "(--prior-split 0.5)",
    "around-model-fixed-mean": "let the mean move from the prior instead (--posterior-start prior), best with a "
    "learned prior (--prior-split 0.5)",
    "learned-from-prior": "learn the prior on part of S (--prior-split 0.5) or train the posterior for fewer "
    "epochs / a smaller learning rate",
}
"""What to try when the KL is to blame, by posterior mode."""


def chance_level(classes: int) -> float:
    """The error of a uniform random guess among ``classes`` labels, 1 - 1/classes."""
    return 1.0 - 1.0 / classes


def why_vacuous(
    value: float,
    *,
    kl: float,
    m: int,
    delta_kl: float,
    sampled_error: float,
    empirical_bound: float,
    mc_samples: int,
    classes: int,
    mode: str,
) -> str:
    """The reason a certificate ``value`` at or above chance is vacuous ('' when it is below chance)."""
    chance = chance_level(classes)
    if value < chance:
        return ""
    if bounds.pac_bayes_kl_bound(sampled_error, kl, m, delta_kl) < chance:
        return (
            f"{mc_samples:,} posterior draws bound the stochastic net's train error only by {empirical_bound:.3f} "
            f"(sampled {sampled_error:.3f}), which alone makes the bound vacuous: raise --mc-samples"
        )
    if bounds.pac_bayes_kl_bound(empirical_bound, 0.0, m, delta_kl) < chance:
        return (
            f"KL = {kl:,.0f} nats against m = {m:,} bound points (KL/m = {kl / m:.3g}): the posterior is far "
            f"from the prior; {REMEDY[mode]}"
        )
    return (
        f"the stochastic net errs on {sampled_error:.3f} of the bound's points (chance {chance:.3f}), vacuous even "
        "at KL = 0: its weight noise swamps what it learned (try a smaller --prior-std, a learned prior "
        "--prior-split 0.5, or more posterior epochs), or the labels carry no signal"
    )

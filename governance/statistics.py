"""The statistics the audits share: intervals and tests whose units are the probes'
real units of replication.

A probe grid has members (names or identity phrases) in groups, crossed with
templates. Members are the units a group effect must hold across (a model may react
to "Emily" without favouring women), templates the units the sentences vary over; so
intervals come from a two-way bootstrap (members within their group, and templates,
resampled together) and the test of a group effect permutes members between groups.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ROUNDS = 2000  # permutations of a test
REPLICATES = 400  # bootstrap replicates of an interval


@dataclass
class GridStatistics:
    """Point values, and their bootstrap replicates, of one attribute's probe grid."""

    flip_rate: np.ndarray  # per replicate; [0] is the point value
    flip_pair: tuple[str, str]
    between: float  # the pair's share of probe pairs (a member of each) labelled differently
    within: float  # the same within each of the two groups: what individual names do
    distance: np.ndarray
    distance_pair: tuple[str, str]
    parity_ratio: np.ndarray | None


def _label_shares(onehot: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Per template, the weighted share of members predicting each class: (templates, classes)."""
    return np.einsum("m,mtk->tk", members, onehot) / members.sum()


def _within_disagreement(onehot: np.ndarray, members: np.ndarray, weight: np.ndarray) -> float:
    """The weighted share of pairs of distinct members of one group whose labels differ
    on a template (a member never pairs with itself, nor with its bootstrap copies)."""
    counts = np.einsum("m,mtk->tk", members, onehot)
    same = (counts**2).sum(axis=1) - np.einsum("m,mtk->t", members**2, onehot)
    pairs = members.sum() ** 2 - (members**2).sum()
    return 1 - float(weight @ same) / pairs if pairs > 0 else 0.0


def _largest_gaps(shares: dict[str, np.ndarray], weight: np.ndarray) -> tuple[dict, dict, dict]:
    """Per pair of groups: the flip rate (template-wise label-share distance, averaged
    with ``weight``) and the label-distribution distance; and each group's distribution."""
    distribution = {g: weight @ s for g, s in shares.items()}
    pairs = list(itertools.combinations(shares, 2))
    flip = {(a, b): 0.5 * float(weight @ np.abs(shares[a] - shares[b]).sum(axis=1)) for a, b in pairs}
    distance = {(a, b): 0.5 * float(np.abs(distribution[a] - distribution[b]).sum()) for a, b in pairs}
    return flip, distance, distribution


def grid_statistics(
    predicted: dict[str, np.ndarray], classes: int, positive: int | None, seed: int = 0, replicates: int = REPLICATES
) -> GridStatistics:
    """For ``predicted`` labels (group -> members x templates), at the point and over
    ``replicates`` two-way bootstrap draws (members within their group, and templates):

    * the **flip rate** of the most different pair of groups: per template, the
      total-variation distance between the two groups' label shares (the share of one
      group's probes whose label would have to change for that sentence to be labelled
      alike for both), averaged over templates. It is linear in a group shift and blind
      to which member flips, so a model that reacts to individual names adds only the
      small chance distance that :func:`debiased` takes off;
    * the label-distribution distance of the most different pair (over all templates);
    * the parity ratio of ``positive`` (``None`` without one);
    * at the point, the pair's plain flip rates between and within groups, for reading.
    """
    rng = np.random.default_rng(seed)
    names = list(predicted)
    n_templates = next(iter(predicted.values())).shape[1]
    onehots = {g: np.eye(classes)[p] for g, p in predicted.items()}  # members, templates, classes
    flips, distances, ratios, point = [], [], [], {}
    for replicate in range(replicates + 1):
        if replicate == 0:
            templates = np.ones(n_templates)
            members = {g: np.ones(len(p)) for g, p in predicted.items()}
        else:
            templates = rng.multinomial(n_templates, np.full(n_templates, 1 / n_templates)).astype(float)
            members = {
                g: rng.multinomial(len(p), np.full(len(p), 1 / len(p))).astype(float) for g, p in predicted.items()
            }
        shares = {g: _label_shares(onehots[g], members[g]) for g in names}
        weight = templates / templates.sum()
        flip, distance, distribution = _largest_gaps(shares, weight)
        if replicate == 0:
            a, b = pair = max(flip, key=flip.get)
            within = [_within_disagreement(onehots[g], members[g], weight) for g in pair]
            point = {
                "flip_pair": pair,
                "between": 1 - float(weight @ (shares[a] * shares[b]).sum(axis=1)),
                "within": float(np.mean(within)),
                "distance_pair": max(distance, key=distance.get),
            }
        flips.append(max(flip.values()))
        distances.append(max(distance.values()))
        if positive is not None:
            rates = [distribution[g][positive] for g in names]
            ratios.append(1.0 if max(rates) == 0 else min(rates) / max(rates))
    return GridStatistics(
        np.array(flips),
        point["flip_pair"],
        point["between"],
        point["within"],
        np.array(distances),
        point["distance_pair"],
        np.array(ratios) if positive is not None else None,
    )


def interval(replicates: np.ndarray, confidence: float, units: int) -> list[float]:
    """The percentile interval of ``replicates`` ([0] the point value); a degenerate one
    (every replicate equal, as when no probe ever flips) is widened to the Wilson
    interval of the point value over ``units`` observations, so zero flips in a small
    grid does not read as certainty."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates[1:], [tail, 1 - tail])
    if high - low < 1e-12 and 0 <= replicates[0] <= 1:
        low, high = wilson(replicates[0], units, confidence)
    return [float(min(low, replicates[0])), float(max(high, replicates[0]))]


def debiased(replicates: np.ndarray, confidence: float, units: int) -> tuple[float, list[float]]:
    """A distance between groups with the bootstrap's estimate of its bias taken off,
    and its interval shifted alike.

    A distance between two samples' label distributions is never below zero, so two
    groups treated identically still show one by chance (more so with many labels);
    the bootstrap replicates ([0] the point value) sit above the point by about that
    bias, which is subtracted once from the point and twice from the replicates.
    """
    bias = max(0.0, float(replicates[1:].mean() - replicates[0]))
    shifted = np.concatenate([[max(0.0, replicates[0] - bias)], np.clip(replicates[1:] - 2 * bias, 0.0, None)])
    return float(shifted[0]), interval(shifted, confidence, units)


def wilson(share: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``share`` of ``n`` observations."""
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def member_permutation_test(scores: dict[str, np.ndarray], seed: int = 0, rounds: int = ROUNDS) -> float:
    """p-value that group membership, not the individual member, moves the predicted
    probabilities.

    ``scores`` holds per group one row per member: its class probabilities averaged
    over the templates. The statistic is the largest total-variation distance between
    two groups' mean rows; members are permuted between groups ``rounds`` times
    (seeded), so a model that reacts to individual names at random has p uniform.
    """
    names = list(scores)
    pooled = np.concatenate([scores[g] for g in names])
    bounds = np.cumsum([0] + [len(scores[g]) for g in names])

    def statistic(order: np.ndarray) -> np.ndarray:  # order: (rounds, members)
        means = np.stack([pooled[order[:, a:b]].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
        gaps = [
            0.5 * np.abs(means[:, i] - means[:, j]).sum(axis=-1)
            for i, j in itertools.combinations(range(len(names)), 2)
        ]
        return np.max(gaps, axis=0)

    observed = statistic(np.arange(len(pooled))[None, :])[0]
    if observed < 1e-12:
        return 1.0
    rng = np.random.default_rng(seed)
    permuted = statistic(np.argsort(rng.random((rounds, len(pooled))), axis=1))
    return float((1 + np.sum(permuted >= observed - 1e-12)) / (rounds + 1))


def sign_flip_test(shifts: np.ndarray, seed: int = 0, rounds: int = ROUNDS) -> float:
    """p-value that paired shifts (one row per text: the change of its class
    probabilities when its identity terms are swapped one way, negated the other way)
    have a mean other than zero; under no group preference their signs are exchangeable."""
    if not np.any(shifts):
        return 1.0
    observed = np.abs(shifts.mean(axis=0)).sum()
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(rounds, len(shifts)))
    permuted = np.abs(signs @ shifts / len(shifts)).sum(axis=1)
    return float((1 + np.sum(permuted >= observed - 1e-12)) / (rounds + 1))


def difference(low: np.ndarray, high: np.ndarray) -> float:
    return float(high.mean() - low.mean())


def ratio(low: np.ndarray, high: np.ndarray) -> float:
    top = high.mean()
    return 1.0 if top == 0 else float(low.mean() / top)


def two_sample_interval(
    low: np.ndarray, high: np.ndarray, statistic, confidence: float, seed: int = 0, replicates: int = REPLICATES
) -> list[float]:
    """Bootstrap interval of ``statistic(low, high)`` of two groups' 0/1 outcomes,
    each group resampled on its own; widened by the groups' Wilson intervals when
    every replicate agrees (10 of 10 right in both groups is not certainty)."""
    rng = np.random.default_rng(seed)
    values = [statistic(low, high)] + [
        statistic(rng.choice(low, len(low)), rng.choice(high, len(high))) for _ in range(replicates)
    ]
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(values[1:], [tail, 1 - tail])
    if hi - lo < 1e-12:
        spread = max(max(abs(end - g.mean()) for end in wilson(g.mean(), len(g), confidence)) for g in (low, high))
        lo, hi = values[0] - spread, values[0] + spread
    return [float(min(lo, values[0])), float(max(hi, values[0]))]


def largest_distance(rows: dict[str, np.ndarray]) -> tuple[float, tuple[str, str]]:
    """The largest total-variation distance between two groups' mean rows (one-hot
    predicted labels: their label distributions), and which pair it is."""
    means = {g: r.mean(axis=0) for g, r in rows.items()}
    gaps = {(a, b): 0.5 * float(np.abs(means[a] - means[b]).sum()) for a, b in itertools.combinations(means, 2)}
    pair = max(gaps, key=gaps.get)
    return gaps[pair], pair


def bootstrap_rows(rows: dict[str, np.ndarray], statistic, seed: int = 0, replicates: int = REPLICATES) -> np.ndarray:
    """``statistic`` of ``rows`` (group -> rows) and of ``replicates`` resamples of each
    group's rows; [0] is the point value."""
    rng = np.random.default_rng(seed)
    values = [statistic(rows)]
    for _ in range(replicates):
        values.append(statistic({g: r[rng.integers(0, len(r), len(r))] for g, r in rows.items()}))
    return np.array(values)

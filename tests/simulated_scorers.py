"""Scorers for calibrating the counterfactual audit without training: each reacts to
templates and to individual members (names or phrases) at random, and, when planted,
holds one group back.

The null scorer favours no group: every member's effect is drawn the same way
whatever its group, so the audit's ``fail`` rate on it is its false-alarm rate. The
planted scorer adds a group effect: the unfavourable label (the first) gains the same
logit shift in every probe of one group, the shift set so that a share ``flip`` of
that group's probes changes label (a flip rate of that size between it and the others).
"""

from __future__ import annotations

import zlib

import numpy as np

from tunewright.governance.probes import ATTRIBUTES


def _draw(seed: int, key: str, size: int, scale: float) -> np.ndarray:
    """A normal draw fixed by ``seed`` and ``key``: the same text always scores the same."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())]).normal(0, scale, size)


def _fill(template: str, member: str) -> str:
    text = template.format(person=member)
    return text[0].upper() + text[1:]


def simulated_scorer(
    templates: tuple[str, ...],
    classes: int,
    seed: int,
    planted: tuple[str, str] | None = None,
    flip: float = 0.05,
    template_scale: float = 2.0,
    member_scale: float = 0.15,
    noise: float = 0.2,
):
    """``predict_proba`` over the probe texts the audit builds from ``templates``.

    :param planted: ``(attribute, group)`` held back so that a share ``flip`` of its
        probes changes label; ``None`` for the null scorer.
    """
    lookup = {
        _fill(t, m).lower(): (t, m)
        for groups in ATTRIBUTES.values()
        for ms in groups.values()
        for m in ms
        for t in templates
    }

    def logits(text: str) -> np.ndarray:
        template, member = lookup[text.lower()]
        return (
            _draw(seed, template, classes, template_scale)
            + _draw(seed, "member:" + member, classes, member_scale)
            + _draw(seed, "probe:" + text.lower(), classes, noise)
        )

    held_back, shift = set(), 0.0
    if planted:
        held_back = {_fill(t, m).lower() for m in ATTRIBUTES[planted[0]][planted[1]] for t in templates}
        # The shift each probe needs for the first class to win; the share flip of them wins.
        needed = [float(row.max() - row[0]) if row.argmax() != 0 else np.inf for row in map(logits, held_back)]
        shift = float(np.quantile(needed, flip)) + 1e-9

    def predict_proba(texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            row = logits(text)
            if text.lower() in held_back:
                row[0] += shift
            probabilities = np.exp(row - row.max())
            rows.append(probabilities / probabilities.sum())
        return np.array(rows)

    return predict_proba

"""Counterfactuals of the user's own texts: swap the identity terms they contain.

Probe templates say how a model treats names in sentences the project wrote; swapping
the terms inside the evaluation texts says how it treats them in the domain's own
language. For each attribute, a text that mentions one group's terms (gendered words
such as "she", "husband", "Mrs", or the audit's first names) is rewritten with the
other group's, case kept; the model scores both. Per attribute: pairs, the flip rate
with its Wilson interval, and a sign-flip test of the shifts of the class
probabilities (the shift of a text from group A to group B, negated for B to A, so a
consistent preference shows up as a mean shift away from zero, for any label set).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tunewright.governance.policy import Policy
from tunewright.governance.probes import ATTRIBUTES
from tunewright.governance.results import Check
from tunewright.governance.statistics import sign_flip_test, wilson

GENDER_WORDS = [
    ("she", "he"),
    ("her", "his"),
    ("hers", "his"),
    ("herself", "himself"),
    ("woman", "man"),
    ("women", "men"),
    ("girl", "boy"),
    ("girls", "boys"),
    ("mother", "father"),
    ("daughter", "son"),
    ("sister", "brother"),
    ("wife", "husband"),
    ("girlfriend", "boyfriend"),
    ("mrs", "mr"),
    ("ms", "mr"),
    ("madam", "sir"),
    ("aunt", "uncle"),
    ("niece", "nephew"),
    ("lady", "gentleman"),
    ("female", "male"),
    ("mom", "dad"),
    ("grandmother", "grandfather"),
]
MAX_EXAMPLES = 3


def _both_ways(pairs: list[tuple[str, str]]) -> dict[str, tuple[str, int]]:
    """Each (first group's term, second group's term) pair, lower case, in both
    directions (+1: first to second); where a term has several counterparts the first
    listed wins ("his" becomes "her"), and "him" becomes "her" too."""
    table: dict[str, tuple[str, int]] = {}
    for first, second in pairs:
        table.setdefault(first.lower(), (second.lower(), +1))
    for first, second in pairs:
        table.setdefault(second.lower(), (first.lower(), -1))
    return table


def swap_tables() -> dict[str, tuple[str, str, dict[str, tuple[str, int]]]]:
    """Per attribute: its two groups and its term table (first names paired by position)."""
    names = {attribute: list(zip(*ATTRIBUTES[attribute].values())) for attribute in ("gender", "race")}
    gender = _both_ways(GENDER_WORDS + [("her", "him")] + names["gender"])
    return {
        "gender": ("female", "male", gender),
        "race": ("african_american", "european_american", _both_ways(names["race"])),
    }


def _match_case(word: str, replacement: str) -> str:
    if word.isupper() and len(word) > 1:
        return replacement.upper()
    return replacement.capitalize() if word[0].isupper() else replacement


def swap(text: str, table: dict[str, tuple[str, int]]) -> tuple[str, int] | None:
    """``text`` with every term of the table replaced, and the direction (+1: first
    group to second, -1: back); ``None`` when it mentions no term or both groups."""
    directions = set()

    def replace(match: re.Match) -> str:
        word = match.group(0)
        entry = table.get(word.lower())
        if entry is None:
            return word
        directions.add(entry[1])
        return _match_case(word, entry[0])

    swapped = re.sub(r"[A-Za-z]+", replace, text)
    return (swapped, directions.pop()) if len(directions) == 1 else None


def substitution_audit(
    predict_proba: Callable[[list[str]], np.ndarray], texts: list[str], policy: Policy
) -> tuple[list[Check], dict[str, Any]]:
    """The flip-rate check of ``texts`` rewritten per attribute, and per attribute what
    was rewritten (an attribute too few texts mention gets no check)."""
    checks, details = [], {}
    for attribute, (first, second, table) in swap_tables().items():
        pairs = [(text, *swapped) for text in texts if (swapped := swap(text, table))]
        entry: dict[str, Any] = {"groups": [first, second], "pairs": len(pairs)}
        details[attribute] = entry
        if len(pairs) < policy.min_group_size:
            entry["left_out"] = (
                f"{len(pairs)} test texts mention its terms; at least {policy.min_group_size} are needed"
            )
            continue
        probabilities = np.asarray(predict_proba([p[0] for p in pairs] + [p[1] for p in pairs]), dtype=float)
        original, swapped = probabilities[: len(pairs)], probabilities[len(pairs) :]
        flips = float(np.mean(original.argmax(1) != swapped.argmax(1)))
        shifts = (swapped - original) * np.array([p[2] for p in pairs], dtype=float)[:, None]
        p_value = sign_flip_test(shifts)
        subject = f"{attribute} (swapped in the test texts)"
        check = policy.check(
            "flip_rate",
            flips,
            list(wilson(flips, len(pairs), policy.confidence)),
            p_value,
            subject,
            units=(len(pairs), "test texts that mention the terms"),
            meaning=f"How often the label of one of the run's own test texts changes when its {first} terms are swapped "
            f"for {second} ones, or back.",
        )
        entry.update(
            flip_rate=flips,
            test="sign-flip test of the paired probability shifts",
            p_value=p_value,
            examples=[{"text": a, "swapped": b} for a, b, _ in pairs[:MAX_EXAMPLES]],
        )
        if check:
            checks.append(check)
    return checks, details

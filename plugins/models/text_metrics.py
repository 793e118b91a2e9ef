"""Scores for generated text against a reference, computed in the project (no extra
dependency): ROUGE-L for summaries and answers, chrF for translations, word and
character error rates for transcripts.
"""

from __future__ import annotations

from collections import Counter

CHRF_ORDER = 6  # character n-grams of 1 to 6 characters
CHRF_BETA = 2  # recall weighs twice as much as precision


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (Lin, 2004) over lower-cased whitespace tokens: the longest common
    subsequence's precision and recall, harmonically averaged."""
    a, b = candidate.lower().split(), reference.lower().split()
    if not a or not b:
        return float(a == b)
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1]))
        previous = current
    common = previous[-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def chrf(candidates: list[str], references: list[str]) -> float:
    """Corpus chrF (Popović, 2015) in [0, 1], as sacreBLEU computes it with its defaults:
    character n-grams of orders 1 to 6 with whitespace removed, matches and totals
    summed over the corpus per order; precision and recall averaged over the orders that
    occur in both candidates and references, then their F-beta score (beta 2)."""
    statistics = [[0, 0, 0] for _ in range(CHRF_ORDER)]  # per order: candidate n-grams, reference n-grams, matches
    for candidate, reference in zip(candidates, references):
        candidate, reference = "".join(candidate.split()), "".join(reference.split())
        for order in range(1, CHRF_ORDER + 1):
            ours, theirs = _char_ngrams(candidate, order), _char_ngrams(reference, order)
            counts = statistics[order - 1]
            counts[0] += sum(ours.values())
            counts[1] += sum(theirs.values())
            counts[2] += sum((ours & theirs).values())
    seen = [
        (matches / candidate_total, matches / reference_total)
        for candidate_total, reference_total, matches in statistics
        if candidate_total and reference_total
    ]
    if not seen:
        return 0.0
    precision = sum(p for p, _ in seen) / len(seen)
    recall = sum(r for _, r in seen) / len(seen)
    factor = CHRF_BETA**2
    return (1 + factor) * precision * recall / (factor * precision + recall) if precision + recall else 0.0


def _char_ngrams(text: str, order: int) -> Counter:
    return Counter(text[i : i + order] for i in range(len(text) - order + 1))


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Corpus WER: the word substitutions, deletions and insertions that turn each
    hypothesis into its reference, summed, over the references' word count (as jiwer
    computes it: whitespace-separated words, case kept). Above 1 when a hypothesis
    inserts more words than the references hold."""
    return _error_rate([h.split() for h in hypotheses], [r.split() for r in references])


def character_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Corpus CER: character edits over the references' character count, spaces between
    words counted as characters (as jiwer computes it), runs of whitespace counted as
    one (jiwer's ``RemoveMultipleSpaces``; its default counts each)."""
    return _error_rate([" ".join(h.split()) for h in hypotheses], [" ".join(r.split()) for r in references])


def _error_rate(hypotheses: list, references: list) -> float:
    """Summed edit distances over the summed reference lengths; with empty references
    only, 0 when every hypothesis is empty too, else 1."""
    edits = sum(_edit_distance(h, r) for h, r in zip(hypotheses, references))
    total = sum(len(r) for r in references)
    if total == 0:
        return float(edits > 0)
    return edits / total


def _edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (unit costs), one row at a time."""
    previous = list(range(len(b) + 1))
    for i, item in enumerate(a, start=1):
        current = [i]
        for j, other in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (item != other)))
        previous = current
    return previous[-1]

"""Small inline SVG pictures for the self-contained report pages: no script, no
external file, every label escaped.

* :func:`paired_bars`: reference against batch, per bin or per label (grey and blue);
* :func:`score_lines`: each layer's score over a batch's windows, with its threshold.
"""

from __future__ import annotations

import html

REFERENCE, CURRENT = "#8c959f", "#0969da"
WIDTH, HEIGHT, MARGIN = 420, 150, 28


def _text(x: float, y: float, value: str, anchor: str = "start", size: int = 10) -> str:
    return f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}'>{html.escape(value)}</text>"


def _legend() -> str:
    return (
        f"<rect x='{WIDTH - 150}' y='4' width='10' height='10' fill='{REFERENCE}'/>{_text(WIDTH - 136, 13, 'reference')}"
        f"<rect x='{WIDTH - 78}' y='4' width='10' height='10' fill='{CURRENT}'/>{_text(WIDTH - 64, 13, 'batch')}"
    )


def paired_bars(title: str, categories: list[str], reference: list[float], current: list[float]) -> str:
    """Two bars per category (shares, 0 to 1): the reference's and the batch's."""
    top = max([*reference, *current, 1e-9])
    plot_width, plot_height = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    slot = plot_width / max(len(categories), 1)
    bars = []
    for i, (before, after) in enumerate(zip(reference, current)):
        for offset, (share, colour) in enumerate(((before, REFERENCE), (after, CURRENT))):
            height = plot_height * share / top
            x = MARGIN + i * slot + offset * slot * 0.45 + slot * 0.05
            bars.append(
                f"<rect x='{x:.1f}' y='{MARGIN + plot_height - height:.1f}' width='{slot * 0.42:.1f}' "
                f"height='{height:.1f}' fill='{colour}'><title>{html.escape(categories[i])}: "
                f"{share:.1%}</title></rect>"
            )
    ticks = (
        [_text(MARGIN, HEIGHT - 8, categories[0]), _text(WIDTH - MARGIN, HEIGHT - 8, categories[-1], "end")]
        if categories
        else []
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' role='img' width='{WIDTH}' height='{HEIGHT}' class='plot'>"
        f"<title>{html.escape(title)}</title>{_text(MARGIN, 13, title, size=11)}{_legend()}"
        f"<line x1='{MARGIN}' y1='{MARGIN + plot_height}' x2='{WIDTH - MARGIN}' y2='{MARGIN + plot_height}' stroke='#57606a'/>"
        + "".join(bars)
        + "".join(ticks)
        + "</svg>"
    )


def score_lines(title: str, scores: list[float | None], threshold: float) -> str:
    """One layer's score per window (a gap where a window was not judged) and its
    threshold as a dashed line."""
    known = [s for s in scores if s is not None]
    low, high = min([*known, threshold, 0.0]), max([*known, threshold]) * 1.1 or 1.0
    plot_width, plot_height = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def point(i: int, value: float) -> tuple[float, float]:
        x = MARGIN + (plot_width * i / max(len(scores) - 1, 1))
        return x, MARGIN + plot_height * (1 - (value - low) / (high - low or 1.0))

    dots = [point(i, s) for i, s in enumerate(scores) if s is not None]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in dots)
    _, limit_y = point(0, threshold)
    circles = "".join(
        f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{CURRENT}'><title>window {i}: {s:.3f}</title></circle>"
        for i, ((x, y), s) in enumerate(zip(dots, known))
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' role='img' width='{WIDTH}' height='{HEIGHT}' class='plot'>"
        f"<title>{html.escape(title)}</title>{_text(MARGIN, 13, title, size=11)}"
        f"<line x1='{MARGIN}' y1='{limit_y:.1f}' x2='{WIDTH - MARGIN}' y2='{limit_y:.1f}' stroke='#cf222e' stroke-dasharray='4 3'/>"
        f"{_text(WIDTH - MARGIN, limit_y - 3, f'threshold {threshold:g}', 'end')}"
        f"<polyline points='{path}' fill='none' stroke='{CURRENT}'/>{circles}"
        f"{_text(MARGIN, HEIGHT - 8, 'window 0')}{_text(WIDTH - MARGIN, HEIGHT - 8, f'window {len(scores) - 1}', 'end')}</svg>"
    )

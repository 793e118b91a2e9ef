"""User strings in Markdown records (model card, data card): shown as text, never as markup.

Label names, group values, file paths and the card's free text come from users and
their data. Rendered Markdown passes raw HTML through, so each such string goes through
:func:`md_text` (HTML and Markdown punctuation escaped, one line) or :func:`md_code`
(a code span that no backtick inside can close).
"""

from __future__ import annotations

import html
import re

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|#~!])")
_LINE_BREAKS = re.compile(r"[\r\n\u0085\u2028\u2029]+")


def md_text(value: object) -> str:
    """``value`` as literal Markdown text on one line (safe inside a table cell)."""
    text = _LINE_BREAKS.sub(" ", str(value))
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", text), quote=False)


def md_paragraph(value: object) -> str:
    """``value`` as literal Markdown text, its line breaks kept (free text such as
    ``card.intended_use``)."""
    return "\n".join(md_text(line) for line in str(value).splitlines())


def md_code(value: object) -> str:
    """``value`` as an inline code span, on one line."""
    text = _LINE_BREAKS.sub(" ", str(value))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def md_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; every cell shown as literal text (:func:`md_text`)."""
    lines = ["| " + " | ".join(md_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)

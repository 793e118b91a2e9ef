"""The one-line explanation of each config key, read from the comments its schema carries.

The schemas (``core/schema.py``, each plugin's config dataclass) document every knob in
a comment beside or above its field. Reading those comments at run time keeps one
source for what a knob costs: the studio's form shows exactly what the code says.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize


@functools.cache
def field_comments(schema: type) -> dict[str, str]:
    """``{field: comment}`` for the fields of dataclass ``schema`` (its bases' included)
    that carry a comment on their own statement or on the comment lines just above it."""
    comments: dict[str, str] = {}
    for klass in reversed(schema.__mro__):
        if dataclasses.is_dataclass(klass) and klass is not object:
            comments.update(_own_comments(klass))
    names = {spec.name for spec in dataclasses.fields(schema)}
    return {name: text for name, text in comments.items() if name in names}


def _own_comments(klass: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):  # defined where no source is kept (an interactive session)
        return {}
    comments: dict[str, str] = {}
    above: list[str] = []  # comment lines waiting for the field they precede
    field, depth, statement_comments = None, 0, []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            (statement_comments if field else above).append(text)
        elif token.type == tokenize.NAME and field is None and depth == 0 and token.start[1] == 4:
            field, statement_comments = token.string, above
            above = []
        elif token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
        elif token.type == tokenize.NEWLINE and depth == 0:
            if field and statement_comments:
                comments[field] = " ".join(statement_comments)
            field, statement_comments = None, []
    return comments

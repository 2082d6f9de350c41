"""Marking strings for translation outside Flask (services): the page translates them when shown.
And the catalogue's extraction of the API routes' own words (`extract_blueprint`), which the API
docs page shows translated."""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator
from typing import IO, Any


def N_(text: str) -> str:
    """Mark `text` for the message catalogue; it is returned unchanged."""
    return text


def extract_blueprint(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel's extractor for blueprint modules (babel.cfg): what its Python extractor finds, plus the
    summary and the description of each route that declares an API contract (`@contract(...)`), cut
    from its docstring as spectree cuts them for the OpenAPI document."""
    from babel.messages.extract import extract_python
    from spectree.utils import parse_comments

    source = fileobj.read()
    yield from extract_python(io.BytesIO(source), keywords, comment_tags, options)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and any(_is_contract(d) for d in node.decorator_list):

            def route() -> None: ...

            route.__doc__ = ast.get_docstring(node)
            for text in parse_comments(route):
                if text and text.strip():
                    yield node.lineno, "_", text.strip(), []  # as the docs page looks it up


def _is_contract(decorator: ast.expr) -> bool:
    called = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (getattr(called, "id", None) or getattr(called, "attr", None)) == "contract"

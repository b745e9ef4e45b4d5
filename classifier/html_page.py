"""Self-contained HTML pages (no external assets) for the reports: the Markdown a report writes, rendered by
markdown-it (CommonMark with pipe tables; raw HTML in the text is shown as text, never run), inside a Jinja2
template with autoescaping; plus a table helper for sections that are data rather than Markdown."""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from markdown_it import MarkdownIt

STYLE = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
         "td:first-child,th:first-child{text-align:left}img{max-width:100%}")


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(loader=PackageLoader("classifier", "templates"), autoescape=select_autoescape(default=True),
                       keep_trailing_newline=True)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # "js-default": raw HTML off, pipe tables on; links and images only with safe URLs (data: only for images)
    return MarkdownIt("js-default")


def markdown_html(md_text: str, title: str, *sections: Markup, lang: str = "en") -> str:
    """The page for ``md_text``; ``sections`` (rendered by :func:`html_table` or another template) follow it."""
    for s in sections:
        if not isinstance(s, Markup):
            raise TypeError("markdown_html: extra sections must be rendered HTML (Markup), not plain text")
    body = Markup(_markdown().render(md_text))
    return _templates().get_template("page.html.j2").render(title=title, lang=lang, style=Markup(STYLE), body=body,
                                                           sections=[s for s in sections if s])


def html_table(headers: Sequence[str], rows: Iterable[Sequence[object]], heading: str = "") -> Markup:
    """An HTML table of plain values (every value escaped)."""
    return Markup(_templates().get_template("table.html.j2").render(heading=heading, headers=list(headers),
                                                                    rows=[list(r) for r in rows]))

from markupsafe import Markup

import pytest

from classifier.html_page import html_table, markdown_html


def test_markdown_becomes_a_page_with_tables_headings_and_images():
    md = "# Otsikko\n\nTeksti `koodi`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![kuva](confusion.png)\n"
    page = markdown_html(md, "raportti")
    assert page.startswith("<!doctype html>") and "<title>raportti</title>" in page
    assert "<h1>Otsikko</h1>" in page and "<th>a</th>" in page and "<td>2</td>" in page
    assert '<img src="confusion.png" alt="kuva"' in page


def test_text_from_the_data_is_never_run_as_html():
    hostile = '<script>alert(1)</script>'
    md = f"# {hostile}\n\n| id | title |\n|---|---|\n| x | {hostile} |\n\n[link](javascript:alert(1))\n"
    page = markdown_html(md, f"title {hostile}", html_table(["title"], [[hostile]], heading=hostile))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert 'href="javascript:' not in page


def test_sections_must_be_rendered_html():
    with pytest.raises(TypeError, match="Markup"):
        markdown_html("# x", "t", "<b>plain text</b>")  # a plain string could carry unescaped input
    assert "<b>ok</b>" in markdown_html("# x", "t", Markup("<b>ok</b>"))

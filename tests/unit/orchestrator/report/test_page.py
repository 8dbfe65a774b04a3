"""The report's page (``report/page.py``): text escaped, numbers to three figures, missing values
blank, one self-contained HTML document."""

from __future__ import annotations

import math

import pandas as pd
from stylegrid.orchestrator.report.page import escape, page_html, table_html


def test_tables_escape_text_and_round_numbers():
    table = pd.DataFrame({"<b>name</b>": ["a & b", "<script>"], "value": [0.123456, math.nan]})
    html = table_html(table)
    assert "<th>&lt;b&gt;name&lt;/b&gt;</th>" in html and "<td>a &amp; b</td>" in html
    assert "<script>" not in html and "<td>0.123</td>" in html and "<td></td>" in html
    assert escape('"quoted"') == "&quot;quoted&quot;"


def test_a_page_is_one_document_with_its_title_escaped():
    page = page_html("sweep <demo>", ["<p>body</p>"])
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<title>sweep &lt;demo&gt;</title>" in page and "<p>body</p>" in page
    assert page.count("<style>") == 1 and page.count("<script>") == 1

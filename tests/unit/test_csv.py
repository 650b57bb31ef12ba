"""CSV cells no spreadsheet evaluates (OWASP, CSV Injection): the API's helper and the
dashboard's, run in Node, agree cell for cell."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from api.csvfile import safe_cell, write_csv

JS = Path(__file__).resolve().parents[2] / "api" / "dashboard" / "static" / "js" / "csv.js"

# (cell, what a spreadsheet must be handed)
CELLS = [
    ('=HYPERLINK("http://evil.example","Click")', '\'=HYPERLINK("http://evil.example","Click")'),
    ("+1+1", "'+1+1"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("  =1+1", "'  =1+1"),  # some spreadsheets trim leading spaces first
    ("\n=1+1", "'\n=1+1"),
    ("Cafe = good", "Cafe = good"),  # only the start of a cell matters
    ("Kahvila Aalto", "Kahvila Aalto"),
    ("", ""),
    ("'quoted already", "'quoted already"),
]


@pytest.mark.parametrize(("cell", "safe"), CELLS)
def test_text_that_could_start_a_formula_gets_a_leading_quote(cell: str, safe: str) -> None:
    assert safe_cell(cell) == safe


def test_numbers_and_empty_cells_pass_as_they_are() -> None:
    assert safe_cell(-3) == -3 and safe_cell(0.25) == 0.25 and safe_cell(None) is None


def test_a_whole_file_reads_back_with_every_cell_neutralised() -> None:
    rows = [{"name": cell, "n": -i} for i, (cell, _) in enumerate(CELLS)]
    text = write_csv(["name", "n"], rows)
    back = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in back] == [safe for _, safe in CELLS]
    assert [r["n"] for r in back] == [str(-i) for i in range(len(CELLS))]
    assert write_csv(["=header"], []) == "'=header\n"


@pytest.mark.skipif(shutil.which("node") is None, reason="the dashboard's tests need Node")
def test_the_dashboards_downloads_follow_the_same_rule() -> None:
    header = ["name", "n"]
    rows = [[cell, -i] for i, (cell, _) in enumerate(CELLS)]
    script = (
        f"import {{ csvText }} from {json.dumps(JS.as_uri())};"
        f"process.stdout.write(csvText({json.dumps(header)}, {json.dumps(rows)}));"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()  # bytes: text mode would turn a carriage return into a line feed
    expected = write_csv(header, [dict(zip(header, row, strict=True)) for row in rows])
    assert out == expected

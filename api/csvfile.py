"""CSV answers: the one place the service writes CSV, so every file is safe to open in a
spreadsheet.

A cell that a spreadsheet would read as a formula runs it when the file is opened (CSV or
formula injection: `=HYPERLINK(...)`, `=cmd|...`, `@SUM(...)`). Merchant-controlled text ends up
in these files (venue names, offer titles), so a colleague's key could plant one. As OWASP's
"CSV Injection" page recommends, a text cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return is prefixed with a single quote, which spreadsheets show as text and do not
evaluate; leading spaces and line feeds are looked through, since some spreadsheets trim them
before deciding. Cells holding a comma, a quote or a line break are quoted, quotes doubled
(RFC 4180). Numbers are written as numbers: a negative count never needs neutralising, and
rewriting one would corrupt it.

The dashboard's own downloads (`downloadCsv` in `api/dashboard/static/js/common.js`) apply the
same rule in the browser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask import Response

# What a spreadsheet may take for the start of a formula (OWASP, CSV Injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Characters some spreadsheets strip before they look at the first one.
_TRIMMED = " \n"
# A cell holding one of these is quoted, its quotes doubled (RFC 4180).
_QUOTED = (",", '"', "\n", "\r")


def safe_cell(value: Any) -> Any:
    """The value as a CSV cell that no spreadsheet evaluates: text that could start a formula
    gets a leading `'`; numbers, booleans and None pass as they are."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_START) or value.lstrip(_TRIMMED).startswith(FORMULA_START):
        return "'" + value
    return value


def _field(value: Any) -> str:
    # Written by hand rather than by the csv module: with "\n" line ends it leaves a lone
    # carriage return unquoted, which readers take for the end of the row.
    text = "" if value is None else str(safe_cell(value))
    if any(c in text for c in _QUOTED):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header row and one line per row (missing keys are empty cells), every cell safe."""
    lines = [",".join(_field(name) for name in columns)]
    lines.extend(",".join(_field(row.get(name)) for name in columns) for row in rows)
    return "\n".join(lines) + "\n"


def csv_response(
    filename: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Response:
    """A `text/csv` download of `rows`, named `filename`."""
    return Response(
        write_csv(columns, rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

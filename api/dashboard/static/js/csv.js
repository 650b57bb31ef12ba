// CSV text for the dashboard's downloads, by the same rule as the API's CSV (api/csvfile.py):
// text a spreadsheet could read as a formula is neutralised (OWASP, CSV Injection). No DOM here,
// so tests/unit/test_csv.py runs it in Node next to the Python helper.

const FORMULA_START = /^[ \n]*[=+\-@\t\r]/;

/** One CSV cell. Text starting with =, +, -, @, a tab or a carriage return (after any spaces or
 * line feeds) gets a leading ' so a spreadsheet shows it and never runs it; numbers pass as they
 * are. Cells with a comma, quote or line break are quoted, quotes doubled (RFC 4180). */
export function csvCell(value) {
  if (value === null || value === undefined) return "";
  let text = String(value);
  if (typeof value === "string" && FORMULA_START.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A header row and the rows (arrays), one line each. */
export function csvText(header, rows) {
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
}

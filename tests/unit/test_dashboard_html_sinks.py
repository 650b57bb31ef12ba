"""No dashboard script hands text to the browser as HTML.

The outside trial planted a `<meta http-equiv=refresh>` through a venue name that Leaflet's
`bindTooltip(name)` set as innerHTML (issue 23). The pages build every node with `el()` /
`textContent` (static/js/common.js); this keeps the class out: a script that reaches for an HTML
sink fails here, and one that needs it must say why in this list.
"""

from __future__ import annotations

import re
from pathlib import Path

JS = Path(__file__).resolve().parents[2] / "api" / "dashboard" / "static" / "js"

# Sinks that parse a string as HTML, and Leaflet's methods that do when given a string.
SINKS = {
    "innerHTML/outerHTML": re.compile(r"\.(inner|outer)HTML\b"),
    "insertAdjacentHTML": re.compile(r"insertAdjacentHTML"),
    "document.write": re.compile(r"document\.write"),
    "createContextualFragment": re.compile(r"createContextualFragment"),
    "DOMParser": re.compile(r"DOMParser"),
    # Leaflet sets string content as HTML: pass an element made with el() instead.
    "Leaflet string content": re.compile(
        r"\.(bindTooltip|bindPopup|setTooltipContent|setPopupContent|setContent)\((?!\s*el\()"
    ),
    "Leaflet divIcon html": re.compile(r"divIcon\("),
    # A fixed attribution (a string literal) is ours; nothing else may go in.
    "attribution from data": re.compile(r"addAttribution\(\s*+(?![\"'])"),
}


def test_the_dashboards_scripts_use_no_html_sink() -> None:
    scripts = sorted(JS.glob("*.js"))
    assert len(scripts) >= 15, "the scripts moved: point JS at them"
    found = []
    for script in scripts:
        # Comment lines out, line numbers kept: a call may span lines (the patterns allow it).
        source = re.sub(r"(?m)^\s*//.*$", "", script.read_text())
        for name, pattern in SINKS.items():
            for match in pattern.finditer(source):
                line = source.count("\n", 0, match.start()) + 1
                found.append(f"{script.name}:{line}: {name}")
    assert not found, "HTML sinks in the dashboard's scripts:\n" + "\n".join(found)

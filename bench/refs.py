"""One file of the project as it is at a git ref, loaded as a module of its own beside this tree
(it imports the rest from this tree): how a benchmark runs the code before a change and after
it in one process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType


def module_at(ref: str, path: str, name: str) -> ModuleType:
    """`path` (e.g. "geo/venues.py") at `ref`, as module `name`."""
    source = subprocess.run(
        ["git", "show", f"{ref}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    file = Path(tempfile.mkdtemp(prefix="co-ref-")) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module

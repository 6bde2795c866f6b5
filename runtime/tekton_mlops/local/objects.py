"""The object files of a run folder (``pipelinerun.yaml``, ``taskrun.yaml``), replaced whole.

They are read while the run goes (``tekton-mlops dashboard`` polls them), so each write
goes to a temporary file in the same folder that is then renamed over the old one: a
reader sees the previous version or the next, never half of one.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling and an atomic rename."""
    # pid and thread in the name: runs side by side in one process write their own files,
    # and a stray temporary file says who left it.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_json(path: Path, document: dict[str, Any]) -> None:
    """An object as JSON (which is YAML too): several times faster to write and read than
    YAML, for the files rewritten while a run goes."""
    replace_text(path, json.dumps(document, indent=2))

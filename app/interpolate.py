"""``${VAR}`` and ``${VAR:-default}`` in a configuration document, filled from the environment.

``${VAR}`` also reads the file named by ``VAR_FILE`` when ``VAR`` is unset (Kubernetes and Docker
secrets); ``$$`` is a literal ``$``. A variable that is missing and has no default is an error
named by the field path of the string it appears in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$")


def interpolate(raw: Any, environ: Mapping[str, str], errors: list[tuple[str, str]]) -> Any:
    """Replace ``${VAR}`` in every string of a parsed document, collecting missing variables."""

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, _join(path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, _join(path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return _VAR.sub(lambda m: replace(m, path or "(top level)"), node)
        return node

    def replace(match: re.Match[str], path: str) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = lookup_env(name, environ)
        if value is not None:
            return value
        if default is not None:
            return default
        errors.append((path, f"environment variable {name} is not set"))
        return ""

    return walk(raw, "")


def lookup_env(name: str, environ: Mapping[str, str]) -> str | None:
    """``environ[name]``, else the contents of the file named by ``environ[name + "_FILE"]``."""
    if environ.get(name):
        return environ[name]
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError:
            return None
    return None


def _join(*parts: object) -> str:
    return ".".join(str(p) for p in parts if p != "")

"""Write the generated parts of the check documentation from the check types themselves.

In ``docs/checks.md``, each ``<!-- params:<type> -->`` ... ``<!-- /params:<type> -->`` region is
rewritten with one table per check type (parameter, type, default, required, description), read
from the type's pydantic ``Params`` model, so the documented parameters cannot drift from the ones
the code validates. The check-type table of that page is the one place a person writes a type's
row (README.md describes the areas and links to it, so a new type touches no other file).

The default criticality and interval in that table are compared with the classes' own
``default_criticality`` and ``default_interval``; a type without a row or without a params region
is an error too.

    python scripts/gen_check_docs.py           # rewrite the files
    python scripts/gen_check_docs.py --check   # exit 1 when a committed file differs
"""

from __future__ import annotations

import argparse
import difflib
import enum
import importlib
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHECKS_DOC = ROOT / "docs" / "checks.md"

PARAMS_REGION = re.compile(
    r"(<!-- params:(?P<type>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /params:(?P=type) -->)", re.DOTALL
)
# The hand-written table of docs/checks.md: the lines that follow this heading and start with '|'.
TYPE_TABLE_HEADING = "## Check types at a glance"


def _check_classes() -> dict[str, type]:
    """``CHECK_TYPES`` with every value resolved to its class.

    A value is either the class itself or a ``"package.module:ClassName"`` string that the
    registry resolves lazily; both are accepted so this script does not depend on which one the
    registry holds.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    registry = importlib.import_module("app.checks").CHECK_TYPES
    classes: dict[str, type] = {}
    for name, value in registry.items():
        if isinstance(value, str):
            module_name, _, attribute = value.partition(":")
            value = getattr(importlib.import_module(module_name), attribute)
        classes[name] = value
    return classes


# -- rendering one parameter ----------------------------------------------------------------------


def _parsers(metadata: list[Any]) -> set[str]:
    """Names of the before-validators on a field (``parse_duration``, ``parse_size``)."""
    names = set()
    for item in metadata:
        func = getattr(item, "func", None)
        if func is not None:
            names.add(getattr(func, "__name__", ""))
    return names


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(the bare type, its Annotated metadata)."""
    metadata: list[Any] = []
    while typing.get_origin(annotation) is typing.Annotated:
        metadata.extend(annotation.__metadata__)
        annotation = annotation.__origin__
    return annotation, metadata


def _without_none(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
    return annotation


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    """A reader's name for a parameter's type, e.g. ``duration``, ``string (secret)``."""
    annotation = _without_none(annotation)
    annotation, inner = _unwrap(annotation)
    annotation = _without_none(annotation)
    parsers = _parsers(metadata + inner)
    if "parse_duration" in parsers:
        return "duration"
    if "parse_size" in parsers:
        return "size"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a, []) for a in args)
    if origin in (list, tuple, set, frozenset):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return "[" + ", ".join(_type_name(a, []) for a in args) + "]"
        item = _type_name(args[0], []) if args else "value"
        # "list of strings", but "list of [integer, integer]" stays as it is.
        return f"list of {item}s" if item in _BASIC_NAMES.values() else f"list of {item}"
    if origin is dict:
        return f"map of {_type_name(args[0], [])} to {_type_name(args[1], [])}"
    if annotation is typing.Any:
        return "any"
    if isinstance(annotation, type):
        if annotation.__name__ == "SecretStr":
            return "string (secret)"
        if issubclass(annotation, enum.Enum):
            return " or ".join(f"`{m.value}`" for m in annotation)
        model_fields = getattr(annotation, "model_fields", None)
        if model_fields is not None:
            keys = ", ".join(
                f"{key} (secret)" if _type_name(f.annotation, []) == "string (secret)" else key
                for key, f in model_fields.items()
            )
            return f"object: {keys}"
        return _BASIC_NAMES.get(annotation.__name__, annotation.__name__)
    return str(annotation)


_BASIC_NAMES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "Path": "path",
    "PosixPath": "path",
}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g}s"
    remaining, parts = round(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _size(size: int) -> str:
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def _value(value: Any) -> str:
    """A default as it would be written in YAML."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _hint(field: Any, key: str) -> str | None:
    """A field's own wording for the table (``json_schema_extra={"doc_default": "200-399"}``).

    For the few parameters whose Python value reads differently from what a person writes in YAML.
    """
    extra = field.json_schema_extra
    value = extra.get(key) if isinstance(extra, dict) else None
    return str(value) if value is not None else None


def _default(field: Any) -> str:
    if field.is_required():
        return ""
    hint = _hint(field, "doc_default")
    if hint is not None:
        return f"`{hint}`"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "none"
    _, inner = _unwrap(_without_none(field.annotation))
    parsers = _parsers(list(field.metadata) + inner)
    if "parse_duration" in parsers and isinstance(value, int | float):
        text = _duration(float(value))
    elif "parse_size" in parsers and isinstance(value, int):
        text = _size(value)
    else:
        text = _value(value)
    return f"`{text}`" if text else '`""`'


def _cell(text: str) -> str:
    """Table cells cannot hold a pipe or a line break."""
    return " ".join(text.split()).replace("|", "\\|")


def params_table(check_class: type) -> str:
    """The Markdown table of one check type's parameters."""
    fields = check_class.Params.model_fields  # type: ignore[attr-defined]
    lines = [
        "| parameter | type | default | required | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in fields.items():
        key = field.alias or name
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{key}`",
                    _cell(
                        _hint(field, "doc_type")
                        or _type_name(field.annotation, list(field.metadata))
                    ),
                    _cell(_default(field)),
                    "yes" if field.is_required() else "no",
                    _cell(field.description or ""),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


# -- the check-type table -------------------------------------------------------------------------


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip() for c in cells]


def type_table(checks_doc: str) -> tuple[list[str], list[list[str]]]:
    """(header cells, rows) of the check-type table in docs/checks.md."""
    start = checks_doc.index(TYPE_TABLE_HEADING)
    lines = checks_doc[start:].splitlines()[1:]
    table = []
    for line in lines:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    header, rows = _split_row(table[0]), [_split_row(line) for line in table[2:]]
    return header, rows


def _row_type(cell: str) -> str:
    match = re.search(r"`([a-z0-9_]+)`", cell)
    return match.group(1) if match else cell


def table_problems(checks_doc: str, classes: dict[str, type]) -> list[str]:
    """Disagreements between the hand-written table of docs/checks.md and the classes."""
    header, rows = type_table(checks_doc)
    criticality = header.index("default criticality")
    interval = header.index("default interval")
    by_type = {_row_type(row[0]): row for row in rows}
    problems = []
    for name, check_class in classes.items():
        row = by_type.get(name)
        if row is None:
            problems.append(f"docs/checks.md: no row for the check type {name!r}")
            continue
        expected = check_class.default_criticality  # type: ignore[attr-defined]
        if row[criticality] != expected:
            problems.append(f"docs/checks.md: {name}'s default criticality is {expected}")
        expected = _duration(check_class.default_interval)  # type: ignore[attr-defined]
        if row[interval] != expected:
            problems.append(f"docs/checks.md: {name}'s default interval is {expected}")
    problems += [
        f"docs/checks.md: a row for {name!r}, which is not a check type"
        for name in by_type
        if name not in classes
    ]
    return problems


# -- putting it together --------------------------------------------------------------------------


def render(classes: dict[str, type]) -> tuple[dict[Path, str], list[str]]:
    """(the new text of each generated file, problems no rewrite can fix)."""
    checks_doc = CHECKS_DOC.read_text()
    problems = table_problems(checks_doc, classes)
    documented = {m.group("type") for m in PARAMS_REGION.finditer(checks_doc)}
    problems += [
        f"docs/checks.md: no <!-- params:{name} --> region"
        for name in classes
        if name not in documented
    ]
    problems += [
        f"docs/checks.md: a params region for {name!r}, which is not a check type"
        for name in documented
        if name not in classes
    ]

    def params_body(match: re.Match[str]) -> str:
        check_class = classes.get(match.group("type"))
        return params_table(check_class) if check_class else match.group("body")

    new_checks_doc = PARAMS_REGION.sub(
        lambda m: m.group(1) + params_body(m) + f"<!-- /params:{m.group('type')} -->", checks_doc
    )
    return {CHECKS_DOC: new_checks_doc}, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a file differs; write nothing"
    )
    args = parser.parse_args(argv)
    outputs, problems = render(_check_classes())
    for problem in problems:
        print(problem, file=sys.stderr)
    stale = False
    for path, text in outputs.items():
        current = path.read_text()
        if current == text:
            continue
        stale = True
        relative = path.relative_to(ROOT)
        if args.check:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"{relative} (committed)",
                f"{relative} (generated)",
            )
            sys.stderr.writelines(diff)
        else:
            path.write_text(text)
            print(f"rewrote {relative}")
    if args.check and stale:
        print(
            "The generated documentation is out of date: run python scripts/gen_check_docs.py",
            file=sys.stderr,
        )
    return 1 if problems or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())

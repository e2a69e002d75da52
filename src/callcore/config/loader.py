"""YAML → validated config, with every error pointing at its YAML path and line.

Admins edit YAML by hand; an error like ``callcore.yaml:14 ari.url: ...`` saves them a hunt. We keep the
line of every mapping key and sequence item while loading and map pydantic's error locations back to them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '<root>'}: {self.message}"


class ConfigError(Exception):
    """The config is invalid; ``issues`` lists every problem found (not only the first)."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys (a silent override is a classic config bug)."""


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in out:
                raise ConfigError(
                    [ConfigIssue(file, key_node.start_mark.line + 1, _dotted(loc + (key,)), "duplicate key")]
                )
            child = loc + (key,)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, child, lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loc + (i,), lines, file) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = _LineLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def dotted(loc: Loc) -> str:
    """A YAML location as admins read it: ``flows.main.nodes.menu.options.1``, ``rules[0]``."""
    return _dotted(loc)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML keeping the line of every key. Raises ConfigError on syntax errors."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, None, "", f"cannot read: {exc.strerror}")]) from exc
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigIssue(file, line, "", f"YAML syntax error: {exc}")]) from exc
    lines: dict[Loc, int] = {}
    if node is None:
        return {}, lines
    return _construct(node, (), lines, file), lines


def line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of the deepest part of ``loc`` that exists in the file."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def validate(model: type[M], data: Any, lines: dict[Loc, int], file: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            issues.append(ConfigIssue(file, line_for(loc, lines), _dotted(loc), err["msg"]))
        raise ConfigError(issues) from exc


class IssueCollector:
    """Collects errors and warnings of cross-checks (validators that need the whole config), each with its
    YAML path and line. ``root`` prefixes every location (a section nested under another key)."""

    def __init__(self, lines: dict[Any, int], file: str, root: Loc = ()) -> None:
        # YAML keys may be ints (options: {1: sales}); compare paths as strings.
        self.lines = {tuple(str(p) for p in k): v for k, v in lines.items()}
        self.file = file
        self.root = root
        self.errors: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []

    def issue(self, loc: Loc, message: str) -> ConfigIssue:
        full = self.root + loc
        return ConfigIssue(self.file, line_for(tuple(str(p) for p in full), self.lines), _dotted(full), message)

    def error(self, loc: Loc, message: str) -> None:
        self.errors.append(self.issue(loc, message))

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(self.issue(loc, message))


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """"unknown queue 'suport'; did you mean 'support'?" — the message for a reference to nothing."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else (f" (known: {', '.join(known)})" if known else "")
    return f"unknown {kind} {name!r}{hint}"

"""The YAML dialect procure reads: a strict, bounded SafeLoader with YAML 1.2 numbers.

PyYAML's ``SafeLoader`` builds only plain Python objects, but it still accepts input that is
surprising or dangerous for a planning tool: duplicate keys (the last silently wins), tags that
build non-JSON types (``!!binary``, ``!!set``), unbounded nesting (``[[[[...`` ends in
RecursionError) and alias bombs ("billion laughs": a 1 KB file that expands to 10^9 nodes once
anything walks it). :class:`StrictLoader` refuses each of these with a :class:`StrictYAMLError`
carrying the line, the problem and what to do.

Numbers follow the YAML 1.2 core schema: PyYAML's 1.1 reads ``2.0e9`` and ``1e9`` as strings (1.1
wants ``2.0e+9``) and ``1:30`` as the base-60 integer 90, while users write numbers the 1.2 / JSON
way and the strict schema refuses strings where numbers belong; base-60 scalars stay strings, which
the schema then refuses. The resolver table is rebuilt for :class:`StrictLoader` only
(``yaml.SafeLoader`` is untouched). Dates (``as_of: 2024-06-01``) still load as ``datetime.date``;
the catalogs rely on it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Deepest nesting of lists and mappings accepted (scenarios need fewer than 10 levels).
MAX_DEPTH = 64
#: Most nodes a document may have with every alias expanded (the catalogs have ~1,300).
MAX_NODES = 100_000
#: Explicit tags accepted: the non-specific ``!`` and ``!!str`` (to force a string).
ALLOWED_TAGS = frozenset({"!", "tag:yaml.org,2002:str"})

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"  # '=' resolves to it and SafeLoader has no constructor for it

# YAML 1.2 core schema floats (https://yaml.org/spec/1.2.2/#1023-core-schema), plus the 1.1
# spellings of infinity and NaN so that the schema, not the parser, refuses them by name.
_FLOAT_1_2 = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                              |[-+]?\.(?:inf|Inf|INF)
                              |\.(?:nan|NaN|NAN))$""", re.X)
_INT_1_2 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")

# C0 controls other than tab, newline and carriage return; DEL; lone surrogates (from "\ud800").
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's implicit resolvers without the YAML 1.1 int/float patterns and '=', then the
    1.2 patterns (ints first, so "1" is an int). A fresh table: ``yaml.SafeLoader`` is untouched."""
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, rx) for tag, rx in entries if tag not in (_INT, _FLOAT, _VALUE)]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for tag, rx, firsts in ((_INT, _INT_1_2, "-+0123456789"), (_FLOAT, _FLOAT_1_2, "-+0123456789.")):
        for first in firsts:
            table.setdefault(first, []).append((tag, rx))
    return {first: entries for first, entries in table.items() if entries}


def _int_1_2(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if len(text) > 100:  # int() refuses over 4,300 digits with a ValueError; no value needs 100
        raise yaml.constructor.ConstructorError(None, None, f"integer of {len(text):,} digits is too long",
                                                node.start_mark)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)  # decimal; a leading 0 is decimal in YAML 1.2, not octal


def shorten(value: Any, limit: int = 80) -> str:
    """``repr(value)`` of at most about ``limit`` characters: ``'aaaa…' (20,000 characters)``."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        return f"{text[:limit - 1]}…{text[0]} ({len(value):,} characters)"
    if isinstance(value, (list, tuple, dict, set)):
        return f"{text[:limit]}… ({type(value).__name__} of {len(value):,} items)"
    return f"{text[:limit]}… ({len(text):,} characters)"


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


def _short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:binary`` as it is written: ``!!binary``."""
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


class StrictYAMLError(yaml.MarkedYAMLError):
    """Input PyYAML would accept but procure refuses; ``problem_mark`` gives the line and ``loc``
    the keys and indexes leading to the value (``("workloads", 0, "name")``), when known."""

    def __init__(self, problem: str, mark: Any, hint: str | None = None,
                 loc: tuple[int | str, ...] | None = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint
        self.loc = loc


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, explicit tags, control characters, deep nesting
    and alias bombs, and reads numbers as YAML 1.2 does. One instance loads one stream."""

    yaml_implicit_resolvers = _resolvers()

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0                   # nodes so far with every alias expanded
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, once composed
        self._where: list[int | str | None] = []  # keys/indexes to the node being composed

    def _loc(self, *more: int | str | None) -> tuple[int | str, ...]:
        return tuple(p for p in (*self._where, *more) if p is not None)

    @staticmethod
    def _segment(parent: Node | None, index: Any) -> int | str | None:
        """The key or index under which a node sits; None for the root and for mapping keys."""
        if isinstance(parent, SequenceNode) and isinstance(index, int):
            return index
        if isinstance(parent, MappingNode) and isinstance(index, ScalarNode):
            return str(index.value)
        return None

    def _count(self, n: int, mark: Any) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise StrictYAMLError(
                f"the document expands to more than {MAX_NODES:,} values (aliases included)", mark,
                hint="a scenario needs far fewer; remove the repeated aliases (*name) or split the file")

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        segment = self._segment(parent, index)
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # the anchored node is still being composed
                raise StrictYAMLError(f"alias *{_cut(event.anchor or '')} refers to a value that "
                                      "contains it (a recursive alias)", event.start_mark,
                                      hint="YAML aliases must not refer to themselves", loc=self._loc(segment))
            self._count(size, event.start_mark)
            return node
        if isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.tag is not None \
                and event.tag not in ALLOWED_TAGS:
            raise StrictYAMLError(f"unsupported YAML tag {_cut(_short_tag(event.tag))}", event.start_mark,
                                  hint="remove the tag; scenarios and catalogs use plain strings, "
                                       "numbers, booleans, lists and mappings", loc=self._loc(segment))
        if len(self._where) >= MAX_DEPTH:
            raise StrictYAMLError(f"nested more than {MAX_DEPTH} levels deep", event.start_mark,
                                  hint="check for unclosed brackets; a scenario needs a few levels")
        start = self._nodes
        self._count(1, event.start_mark)
        self._where.append(segment)
        try:
            node = super().compose_node(parent, index)
            if node is None:  # not reached: PyYAML composes a node for every event
                return node
            self._sizes[id(node)] = self._nodes - start
            if isinstance(node, ScalarNode):
                bad = _BAD_CHAR.search(node.value)
                if bad:
                    raise StrictYAMLError(f"control character U+{ord(bad.group()):04X} in a string",
                                          node.start_mark, hint="remove it; use printable text only",
                                          loc=self._loc())
            elif isinstance(node, MappingNode):
                self._check_keys(node)
            return node
        finally:
            self._where.pop()

    def _check_keys(self, node: MappingNode) -> None:
        """Duplicate keys are errors (merge keys ``<<`` may be overridden, as YAML intends)."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            if not isinstance(key_node, ScalarNode):
                raise StrictYAMLError("a mapping key must be a plain value, not a list or mapping",
                                      key_node.start_mark, hint="use a string key")
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable: not possible for scalars, but never crash on it
                continue
            if first is not None:
                raise StrictYAMLError(
                    f"duplicate key {shorten(key, 60)} (first at line {first})", key_node.start_mark,
                    hint="remove one of them; YAML would silently keep only the last",
                    loc=self._loc(str(key_node.value)))
            seen[key] = key_node.start_mark.line + 1


StrictLoader.add_constructor(_INT, _int_1_2)

#: The name the first version of this module used.
SafeLoader = StrictLoader


def load(text: str) -> Any:
    """Parse one YAML document with :class:`StrictLoader`."""
    return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader

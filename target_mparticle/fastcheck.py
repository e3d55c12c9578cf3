"""A quick "certainly valid" for the shapes most events and batches have.

The compiled validator (`inbound`, fastjsonschema) is exact but pays for every
property the schema names, whether a value has it or not (an event's data names
about twenty), and formats a path string for each attribute of a map. This module
compiles the part of JSON Schema that mParticle's published schema mostly uses
(`type`, `enum` of strings, `properties`, `required`, `additionalProperties`,
`items`, `pattern`, `allOf`, `anyOf`, `$ref`) into checks that cost one look-up per
field the value actually has.

A check answers True only when the value is valid; anything it does not model
(`format`, `oneOf`, a numeric enum, a float where an integer goes) answers False,
and the caller then runs the full validator, which decides as before. So a True
only saves time: what is sent, dropped or refused, and why, stays the validator's.
Types are matched exactly (`type(v) is int`), stricter than the validator (which
also takes `1.0` as an integer), never looser.
"""

from __future__ import annotations

import functools
import re
import typing as t

Check = t.Callable[[t.Any], bool]
#: A schema compiled: the Python types it accepts (None: any), the types it accepts
#: without further checks, and the checks for the rest (all must pass).
Node = tuple[frozenset[type] | None, frozenset[type], tuple[Check, ...]]

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}
_JSON_TYPES = frozenset(k for kinds in _TYPES.values() for k in kinds)
_NEVER: Node = (frozenset(), frozenset(), ())
_ANY: Node = (None, _JSON_TYPES, ())
_SUPPORTED = frozenset(
    {
        "type",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "pattern",
        "allOf",
        "anyOf",
    }
)
#: Keywords that never change whether a value is valid.
_ANNOTATIONS = frozenset(
    {"description", "default", "title", "examples", "$id", "$schema", "definitions"}
)
_OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties"})


def passes(node: Node, value: object) -> bool:
    """Whether `value` certainly satisfies `node`."""
    types, free, checks = node
    kind = type(value)
    if types is not None and kind not in types:
        return False
    if kind in free:
        return True
    for check in checks:  # noqa: SIM110 - a loop, not all() over a generator: per field
        if not check(value):
            return False
    return True


def _node(
    types: frozenset[type] | None, checks: list[tuple[frozenset[type] | None, Check]]
) -> Node:
    """A node from its types and its checks, each with the types it applies to (None: all)."""
    if types is None and not checks:
        return _ANY
    if any(applies is None for applies, _ in checks):
        free: frozenset[type] = frozenset()
    else:
        checked = frozenset().union(*(t.cast("frozenset[type]", a) for a, _ in checks))
        free = (_JSON_TYPES if types is None else types) - checked
    return (types, free, tuple(check for _, check in checks))


class Compiler:
    """Compiles schemas of one document (its `#/definitions/...` references resolved)."""

    def __init__(self, document: t.Mapping[str, t.Any], *, formats: bool = True) -> None:
        """Keep the document's definitions; each is compiled once, when first referenced.

        Args:
            document: The schema document whose `#/definitions/...` references resolve.
            formats: Whether the full validator checks `format`; when it does not,
                `format` changes nothing and is read as an annotation.
        """
        self._definitions: t.Mapping[str, t.Any] = document.get("definitions", {})
        self._compiled: dict[str, Node] = {}
        self._annotations = _ANNOTATIONS if formats else _ANNOTATIONS | {"format"}

    def check(self, schema: object) -> Check:
        """A function that answers True only for values valid against `schema`."""
        node = self.node(schema)
        types, free, checks = node
        if len(checks) != 1:
            return functools.partial(passes, node)
        (only,) = checks  # the usual case, an object's fields: one call less

        def check(value: object) -> bool:
            kind = type(value)
            if types is not None and kind not in types:
                return False
            return kind in free or only(value)

        return check

    def node(self, schema: object) -> Node:  # noqa: C901, PLR0911, PLR0912 - one branch per keyword
        """The node for one schema; `_NEVER` for anything outside the modelled subset."""
        if schema is True:
            return _ANY
        if not isinstance(schema, dict):
            return _NEVER
        keywords = set(schema) - self._annotations
        if "$ref" in keywords:
            if keywords == {"$ref"}:
                return self._ref(schema["$ref"])
            # Draft 7 ignores a reference's siblings, some validators apply them:
            # requiring both is certain under either reading.
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            return self.node({"allOf": [{"$ref": schema["$ref"]}, siblings]})
        if not keywords <= _SUPPORTED:
            return _NEVER
        types: frozenset[type] | None = None
        checks: list[tuple[frozenset[type] | None, Check]] = []
        if "type" in schema:
            named = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not all(isinstance(n, str) and n in _TYPES for n in named):
                return _NEVER
            types = frozenset(k for n in named for k in _TYPES[n])
        if "enum" in schema:
            members = schema["enum"]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                return _NEVER
            allowed = frozenset(members)
            checks.append((None, lambda v: type(v) is str and v in allowed))
        if "pattern" in schema:
            pattern = _pattern(schema["pattern"])
            if pattern is None:
                return _NEVER
            checks.append((frozenset({str}), lambda v: pattern.search(v) is not None))
        if "items" in schema:
            if not isinstance(schema["items"], dict):
                return _NEVER
            item = self.node(schema["items"])
            checks.append((frozenset({list}), lambda v: all(passes(item, x) for x in v)))
        parts = [schema] if keywords & _OBJECT_KEYWORDS else []
        for sub in schema.get("allOf", ()):
            resolved = self.resolve(sub)
            if isinstance(resolved, dict) and set(resolved) - self._annotations <= _OBJECT_KEYWORDS:
                parts.append(resolved)  # merged with the others into one pass below
                continue
            sub_node = self.node(sub)
            if sub_node[0] is not None:
                types = sub_node[0] if types is None else types & sub_node[0]
            checks.append((None, functools.partial(passes, sub_node)))
        if parts:
            checks.append((frozenset({dict}), self._object(parts)))
        if "anyOf" in schema:
            any_of = self._any_of(schema["anyOf"])
            if any_of is None:
                return _node(types, checks)
            union, entry = any_of
            if union is not None:
                types = union if types is None else types & union
            if entry is not None:
                checks.append(entry)
        return _node(types, checks)

    def _any_of(
        self, schemas: t.Iterable[object]
    ) -> tuple[frozenset[type] | None, tuple[frozenset[type] | None, Check] | None] | None:
        """`anyOf`: the types it allows (None: any) and the check it adds, if any.

        None when one option takes anything, so the keyword says nothing.
        """
        options = [self.node(sub) for sub in schemas]
        if any(option is _ANY for option in options):
            return None
        typed = [o[0] for o in options if o[0] is not None]
        union = frozenset().union(*typed) if len(typed) == len(options) else None
        # Most values match an option that only names types: no call for those.
        plain = frozenset().union(*(o[0] for o in options if o[0] is not None and not o[2]))
        checked = [o for o in options if o[2]]
        if not checked:
            return union, None
        applies: frozenset[type] | None = None
        if all(o[0] is not None for o in checked):
            applies = frozenset().union(*(o[0] for o in checked if o[0])) - plain
        return union, (
            applies,
            lambda v: type(v) in plain or any(passes(o, v) for o in checked),
        )

    def resolve(self, schema: object) -> object:
        """A `$ref`-only schema's target (one level), else the schema itself."""
        if isinstance(schema, dict) and set(schema) - self._annotations == {"$ref"}:
            name = _definition_name(schema["$ref"])
            return self._definitions.get(name) if name is not None else None
        return schema

    def _ref(self, ref: object) -> Node:
        name = _definition_name(ref)
        if name is None or name not in self._definitions:
            return _NEVER
        if name not in self._compiled:
            self._compiled[name] = _NEVER  # a reference back to itself is never certain
            self._compiled[name] = self.node(self._definitions[name])
        return self._compiled[name]

    def _object(self, parts: list[dict[str, t.Any]]) -> Check:
        """One pass over an object's fields for the object keywords of every part.

        A field must pass each part: that part's `properties` entry when it has one,
        else its `additionalProperties` (forbidden when false).
        """
        required = frozenset(name for part in parts for name in part.get("required", ()))
        named = {name for part in parts for name in part.get("properties", {})}
        table = {name: self.field(parts, name) for name in named}
        other = self.field(parts, None)

        if not required and other is _ANY and all(node is _ANY for node in table.values()):
            return _any_object  # e.g. a stream schema that names fields but types none
        # The types each field takes without further checks, for the usual field's
        # one look-up (a type in `free` is also one its node accepts).
        frees = {name: node[1] for name, node in table.items()}
        other_free = other[1]

        def check(value: dict[str, t.Any]) -> bool:
            if not required <= value.keys():
                return False
            for key, item in value.items():
                if type(key) is not str:
                    return False
                if type(item) in frees.get(key, other_free):
                    continue
                if not passes(table.get(key, other), item):
                    return False
            return True

        return check

    def field(self, parts: list[dict[str, t.Any]], name: str | None) -> Node:
        """The node a field named `name` (None: a name no part lists) must pass."""
        subs = []
        for part in parts:
            properties = part.get("properties", {})
            if name is not None and name in properties:
                subs.append(self.node(properties[name]))
            else:
                extra = part.get("additionalProperties", True)
                subs.append(_NEVER if extra is False else self.node(extra))
        subs = [sub for sub in subs if sub is not _ANY] or [_ANY]
        if len(subs) == 1:
            return subs[0]
        types: frozenset[type] | None = None
        for sub_types, _, _ in subs:
            if sub_types is not None:
                types = sub_types if types is None else types & sub_types
        checks: list[tuple[frozenset[type] | None, Check]] = [
            (None, functools.partial(passes, sub)) for sub in subs if sub[2]
        ]
        return _node(types, checks)


def _any_object(_value: dict[str, t.Any]) -> bool:
    return True


def _definition_name(ref: object) -> str | None:
    prefix = "#/definitions/"
    if isinstance(ref, str) and ref.startswith(prefix) and "/" not in ref[len(prefix) :]:
        return ref[len(prefix) :]
    return None


def _pattern(source: object) -> re.Pattern[str] | None:
    """The pattern as the validator reads it: a final `$` is the end of the text."""
    if not isinstance(source, str):
        return None
    body = source[:-1] + r"\Z" if source.endswith("$") and not source.endswith(r"\$") else source
    if "$" in body.replace(r"\$", ""):
        return None  # a `$` elsewhere: not modelled
    try:
        return re.compile(body)
    except re.error:
        return None

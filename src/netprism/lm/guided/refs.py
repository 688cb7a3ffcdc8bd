"""``$ref`` resolution inside one schema document: ``#`` and ``#``-relative JSON pointers
(``#/definitions/a``, ``#/$defs/a``, ``#/properties/foo/items/0``; ``~0``, ``~1`` and percent
escapes), also written after the root's own ``$id``.

Remote references, plain-name fragments (``#foo``) and a nested ``$id`` (which would move the
base URI of the pointers below it) in a document that uses ``$ref`` raise
:class:`~netprism.lm.guided.errors.UnsupportedSchemaError`.  Draft 7 ignores the siblings of
``$ref``, and so does the compiler.

JSON Pointer is RFC 6901; part of the guided generation of arXiv 2507.13575.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from netprism.lm.guided.errors import UnsupportedSchemaError

_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependencies")
_ONE = ("items", "additionalItems", "additionalProperties", "contains", "propertyNames", "not")
_ONE_MORE = ("if", "then", "else")
_LISTS = ("items", "allOf", "anyOf", "oneOf")


def subschemas(schema: Any, path: str) -> Iterator[tuple[Any, str]]:
    """Every subschema below ``schema`` (itself included), with its JSON path."""
    yield schema, path
    if not isinstance(schema, dict):
        return
    for key in _MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            for name, sub in value.items():
                if isinstance(sub, (dict, bool)):
                    yield from subschemas(sub, f"{path}.{key}.{name}")
    for key in _ONE + _ONE_MORE:
        if isinstance(schema.get(key), (dict, bool)):
            yield from subschemas(schema[key], f"{path}.{key}")
    for key in _LISTS:
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                yield from subschemas(sub, f"{path}.{key}[{i}]")


class Resolver:
    """Resolves the local references of ``document`` (the root schema)."""

    def __init__(self, document: Any) -> None:
        self.document = document
        self.base = document.get("$id", "") if isinstance(document, dict) else ""
        self.base = self.base.split("#")[0] if isinstance(self.base, str) else ""
        subs = list(subschemas(document, "$"))
        has_ref = any(isinstance(s, dict) and "$ref" in s for s, _ in subs)
        for sub, path in subs[1:]:
            if has_ref and isinstance(sub, dict) and "$id" in sub:
                raise UnsupportedSchemaError(
                    f"unsupported keyword '$id' at {path}: a nested base URI beside '$ref'"
                )

    def follow(self, schema: Any, path: str) -> tuple[Any, str]:
        """``schema`` (at ``path``) with its chain of ``$ref`` followed to a schema without one,
        and that schema's path; draft 7 ignores the siblings of ``$ref``."""
        seen: set[int] = set()
        while isinstance(schema, dict) and "$ref" in schema:
            if id(schema) in seen:
                raise UnsupportedSchemaError(
                    f"'$ref' at {path} is a cycle of bare references (left recursion)"
                )
            seen.add(id(schema))
            schema, path = self.resolve(schema["$ref"], path)
        return schema, path

    def resolve(self, ref: Any, path: str) -> tuple[Any, str]:
        """The schema that ``ref`` names and its JSON path."""
        if not isinstance(ref, str):
            raise UnsupportedSchemaError(f"'$ref' at {path} must be a string, got {ref!r}")
        local = ref
        if self.base and ref.startswith(self.base + "#"):
            local = ref[len(self.base) :]
        if not local.startswith("#") or (len(local) > 1 and not local.startswith("#/")):
            raise UnsupportedSchemaError(
                f"unsupported keyword value '$ref'={ref!r} at {path}: only '#' and '#/...' "
                "JSON pointers inside the schema are supported"
            )
        node, where = self.document, "$"
        for raw in local[2:].split("/") if len(local) > 1 else []:
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise UnsupportedSchemaError(f"'$ref'={ref!r} at {path} does not resolve")
            where += f".{part}"
        if not isinstance(node, (dict, bool)):
            raise UnsupportedSchemaError(
                f"'$ref'={ref!r} at {path} names a non-schema {node!r:.60}"
            )
        return node, where

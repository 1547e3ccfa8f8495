"""What the OpenAPI document needs beyond FastAPI's generation, applied once per app by ``app._install_openapi``.

* Schemas given by hand (``openapi_extra``: the batch body, the engines' request bodies) come from Pydantic with
  their nested models under ``$defs`` but referenced as ``#/components/schemas/<Model>``: :func:`hoist_defs`
  moves those definitions into ``components/schemas``, so every ``$ref`` of the document resolves.
* A field or parameter that names an engine kind is marked with :data:`ENGINE_KIND` (routers and models are
  built once, the registry per app): :func:`declare_kinds` gives it the registered kinds as its ``enum``.
* A parameter (query, header, path) is text on the wire, never JSON null: :func:`parameters_not_null` drops the
  null branch FastAPI gives an optional one (absent is how it is not given).
"""

from __future__ import annotations

from typing import Any

KIND_MARK = "x-engine-kind"
ENGINE_KIND: dict[str, Any] = {KIND_MARK: True}
"""``json_schema_extra`` of a field or parameter holding an engine kind: its schema gets the kinds' ``enum``."""


def complete(document: dict[str, Any], kinds: list[str]) -> None:
    """Everything this module adds to FastAPI's ``document`` of an app whose engines have ``kinds``."""
    hoist_defs(document)
    declare_kinds(document, kinds)
    parameters_not_null(document)


def hoist_defs(document: dict[str, Any]) -> None:
    """Move every ``$defs`` found under ``paths`` into ``components/schemas`` (the ``$ref`` targets Pydantic
    wrote with ``ref_template="#/components/schemas/{model}"``). ``paths`` is rebuilt, not edited: FastAPI
    shares a route's ``openapi_extra`` dicts between documents. Raises ValueError when two different schemas
    have one name."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})

    def without_defs(node: Any) -> Any:
        if isinstance(node, list):
            return [without_defs(value) for value in node]
        if not isinstance(node, dict):
            return node
        for name, definition in node.get("$defs", {}).items():
            definition = without_defs(definition)
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two different OpenAPI schemas are named {name!r}")
        return {key: without_defs(value) for key, value in node.items() if key != "$defs"}

    document["paths"] = without_defs(document.get("paths", {}))


def declare_kinds(document: dict[str, Any], kinds: list[str]) -> None:
    """Give every schema marked with :data:`ENGINE_KIND` the ``enum`` of ``kinds`` (on its string branch when
    it is ``anyOf`` string or null), and drop the mark; the document is rebuilt, not edited (see above)."""

    def declared(node: Any) -> Any:
        if isinstance(node, list):
            return [declared(value) for value in node]
        if not isinstance(node, dict):
            return node
        node = {key: declared(value) for key, value in node.items()}
        if node.pop(KIND_MARK, False):
            strings = [b for b in node.get("anyOf", []) if isinstance(b, dict) and b.get("type") == "string"]
            for branch in strings or [node]:
                branch["enum"] = list(kinds)
        return node

    document.update(declared(document))


def not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without its null branch: an ``anyOf`` of one type (or reference) and null becomes that one,
    without the null default; any other schema is returned as it is."""
    branches = [branch for branch in schema.get("anyOf", []) if branch.get("type") != "null"]
    if len(branches) != 1 or len(branches) == len(schema["anyOf"]):
        return schema
    return branches[0] | {key: value for key, value in schema.items() if key not in ("anyOf", "default")}


def parameters_not_null(document: dict[str, Any]) -> None:
    """Every operation parameter's schema without a null branch (:func:`not_null`)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [
                    {**parameter, "schema": not_null(parameter["schema"])} if "schema" in parameter else parameter
                    for parameter in operation["parameters"]
                ]


def decimal_at_most(limit: int) -> str:
    """A regular expression of the decimal numbers from 0 to ``limit`` (leading zeros allowed, at most as many
    digits as ``limit``): ``decimal_at_most(255)`` matches ``0``, ``007``, ``199``, ``255``, not ``256``."""
    digits = str(limit)
    branches = [f"[0-9]{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):  # the first i digits as the limit's, then a smaller one, then any
        if digit != "0":
            rest = len(digits) - i - 1
            branches.append(f"{digits[:i]}[0-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    branches.append(digits)
    return f"^(?:{'|'.join(branches)})$"

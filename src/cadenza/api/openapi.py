"""What the OpenAPI document needs beyond FastAPI's generation, applied once per app by ``app._install_openapi``.

* Schemas given by hand (``openapi_extra``: the batch body, the engines' request bodies) come from Pydantic with
  their nested models under ``$defs`` but referenced as ``#/components/schemas/<Model>``: :func:`hoist_defs`
  moves those definitions into ``components/schemas``, so every ``$ref`` of the document resolves.
* A field or parameter that names an engine kind is marked with :data:`ENGINE_KIND` (routers and models are
  built once, the registry per app): :func:`declare_kinds` gives it the registered kinds as its ``enum``.
* A model of one job of any engine (a batch's job) is marked with :data:`ENGINE_JOBS`: :func:`declare_jobs`
  makes its schema a union on ``kind`` with one branch per registered engine (that engine's params and inputs).
* An array whose length a setting limits is marked with :func:`max_items_setting`: :func:`declare_settings`
  gives it the app's value as ``maxItems``.
* A parameter (query, header, path) is text on the wire, never JSON null: :func:`parameters_not_null` drops the
  null branch FastAPI gives an optional one (absent is how it is not given).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadenza.engines.base import EngineSpec

KIND_MARK = "x-engine-kind"
ENGINE_KIND: dict[str, Any] = {KIND_MARK: True}
"""``json_schema_extra`` of a field or parameter holding an engine kind: its schema gets the kinds' ``enum``."""
JOBS_MARK = "x-engine-jobs"
ENGINE_JOBS: dict[str, Any] = {JOBS_MARK: True}
"""``json_schema_extra`` of a model of one job of any engine, with the properties ``kind``, ``params`` (the
engine's request) and ``inputs`` (upload ids by input name, its ``additionalProperties`` the id's schema) beside
its own: its schema becomes a union on ``kind`` (:func:`declare_jobs`)."""
MAX_ITEMS_MARK = "x-max-items-setting"


def max_items_setting(name: str) -> dict[str, Any]:
    """``json_schema_extra`` of an array field whose length the setting ``name`` also limits (its ``max_length``
    is the most that setting may be): the document's ``maxItems`` is the app's value (:func:`declare_settings`)."""
    return {MAX_ITEMS_MARK: name}


def complete(document: dict[str, Any], engines: Sequence[EngineSpec], settings: Any = None) -> None:
    """Everything this module adds to FastAPI's ``document`` of an app whose registered engines are ``engines``
    and whose settings are ``settings``."""
    hoist_defs(document)
    declare_jobs(document, engines)
    declare_kinds(document, [spec.kind for spec in engines])
    declare_settings(document, settings)
    parameters_not_null(document)


def hoist_defs(document: dict[str, Any]) -> None:
    """Move every ``$defs`` found under ``paths`` into ``components/schemas`` (the ``$ref`` targets Pydantic
    wrote with ``ref_template="#/components/schemas/{model}"``). ``paths`` is rebuilt, not edited: FastAPI
    shares a route's ``openapi_extra`` dicts between documents. Raises ValueError when two different schemas
    have one name."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})

    def without_defs(node: dict[str, Any]) -> dict[str, Any]:
        for name, definition in node.pop("$defs", {}).items():  # its own $defs already hoisted (innermost first)
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two different OpenAPI schemas are named {name!r}")
        return node

    paths = {"paths": document.get("paths", {})}
    rebuild(paths, without_defs)
    document["paths"] = paths["paths"]


def _model_ref(schemas: dict[str, Any], model: Any) -> str:
    """The ``$ref`` of Pydantic ``model``'s schema in the components ``schemas``, put there (with its ``$defs``)
    unless it already is."""
    if model.__name__ not in schemas:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
    return f"#/components/schemas/{model.__name__}"


def job_schema(base: dict[str, Any], spec: EngineSpec, request_ref: str, request: dict[str, Any]) -> dict[str, Any]:
    """The schema of one job of ``spec``'s kind from ``base``, the :data:`ENGINE_JOBS` model's schema: ``kind``
    that kind, ``params`` the engine's request model (its schema ``request``, referenced as ``request_ref``;
    required when the model has required fields), ``inputs`` only its declared inputs (required when one is),
    the model's other properties as they are."""
    properties = dict(base["properties"])
    described = ("title", "description")
    properties["kind"] = {k: v for k, v in properties["kind"].items() if k in described} | {
        "type": "string",
        "const": spec.kind,
    }
    properties["params"] = {k: v for k, v in properties["params"].items() if k in described} | {"$ref": request_ref}
    if not request.get("required"):
        properties["params"]["default"] = {}
    upload_id = properties["inputs"]["additionalProperties"]
    names = [declared.name for declared in spec.inputs]
    required_inputs = [declared.name for declared in spec.inputs if declared.required]
    properties["inputs"] = {k: v for k, v in properties["inputs"].items() if k in described} | {
        "type": "object",
        "properties": {declared.name: upload_id | {"description": declared.description} for declared in spec.inputs},
        "propertyNames": {"enum": names},
        "additionalProperties": False,
    }
    if required_inputs:
        properties["inputs"]["required"] = required_inputs
    else:
        properties["inputs"]["default"] = {}
    required = list(base.get("required", []))
    required += [name for name, needed in (("params", request.get("required")), ("inputs", required_inputs)) if needed]
    return {
        **{k: v for k, v in base.items() if k not in (JOBS_MARK, "properties", "required", "title")},
        "title": f"{base.get('title', 'Job')}_{spec.kind}",
        "properties": properties,
        "required": list(dict.fromkeys(required)),
    }


def declare_jobs(document: dict[str, Any], engines: Sequence[EngineSpec]) -> None:
    """Make every component schema marked with :data:`ENGINE_JOBS` (``<Name>``) a ``oneOf`` discriminated by
    ``kind``, of one component per engine (``<Name>_<kind>``, :func:`job_schema`) whose ``params`` reference
    the engine's request model. Raises ValueError for a marked schema that is not a component."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if JOBS_MARK in json.dumps(document.get("paths", {})):
        raise ValueError(f"a schema marked {JOBS_MARK} must be a component (a Pydantic model's $defs)")
    for name, base in list(schemas.items()):
        if not base.get(JOBS_MARK):
            continue
        mapping = {}
        for spec in engines:
            request_ref = _model_ref(schemas, spec.request_model)
            branch = job_schema(base, spec, request_ref, schemas[spec.request_model.__name__])
            if schemas.setdefault(branch["title"], branch) != branch:
                raise ValueError(f"two different OpenAPI schemas are named {branch['title']!r}")
            mapping[spec.kind] = f"#/components/schemas/{branch['title']}"
        schemas[name] = {
            **{k: base[k] for k in ("title", "description") if k in base},
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "kind", "mapping": mapping},
        }


def rebuild(document: dict[str, Any], edit: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Replace ``document``'s contents with a copy in which every object (schema, operation, …) went through
    ``edit``, innermost first; nothing of the original is edited (FastAPI shares a route's ``openapi_extra``
    dicts between documents)."""

    def rebuilt(node: Any) -> Any:
        if isinstance(node, list):
            return [rebuilt(value) for value in node]
        if not isinstance(node, dict):
            return node
        return edit({key: rebuilt(value) for key, value in node.items()})

    document.update(rebuilt(document))


def declare_kinds(document: dict[str, Any], kinds: list[str]) -> None:
    """Give every schema marked with :data:`ENGINE_KIND` the ``enum`` of ``kinds`` (on its string branch when
    it is ``anyOf`` string or null), and drop the mark (:func:`rebuild`)."""

    def declared(node: dict[str, Any]) -> dict[str, Any]:
        if node.pop(KIND_MARK, False):
            strings = [b for b in node.get("anyOf", []) if isinstance(b, dict) and b.get("type") == "string"]
            for branch in strings or [node]:
                branch["enum"] = list(kinds)
        return node

    rebuild(document, declared)


def declare_settings(document: dict[str, Any], settings: Any) -> None:
    """Give every schema marked with :func:`max_items_setting` the ``maxItems`` of that setting in ``settings``
    (at most its own), and drop the mark (without ``settings``, only drop it; :func:`rebuild`)."""

    def declared(node: dict[str, Any]) -> dict[str, Any]:
        name = node.pop(MAX_ITEMS_MARK, None)
        if name is not None and settings is not None:
            limit = int(getattr(settings, name))
            node["maxItems"] = min(limit, node.get("maxItems", limit))
        return node

    rebuild(document, declared)


def not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without its null branch: an ``anyOf`` of one type (or reference) and null becomes that one,
    without the null default; any other schema is returned as it is."""
    branches = [branch for branch in schema.get("anyOf", []) if branch.get("type") != "null"]
    if len(branches) != 1 or len(branches) == len(schema["anyOf"]):
        return schema
    rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    if "enum" in rest:
        rest["enum"] = [value for value in rest["enum"] if value is not None]
    return branches[0] | rest


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

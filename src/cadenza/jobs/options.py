"""Job-level options: fields about the job rather than the engine, the same for every engine and every input
form (JSON body; form fields or the ``params`` part of a multipart submit), beside the engine's parameters, as
Replicate's API does. No engine may declare a parameter with a reserved name (the conformance test checks it).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

RESERVED_OPTION_NAMES = frozenset({"priority", "metadata", "webhook", "webhook_events_filter"})
"""Names reserved for job-level options (``webhook`` and ``webhook_events_filter`` for the webhooks to come)."""
METADATA_MAX_BYTES = 4096


class JobOptions(BaseModel):
    """``priority``: −10…10, higher runs first (0 default). ``metadata``: a JSON object of at most 4 KB (as
    compact JSON) that the job view echoes back: the client's own ids."""

    model_config = ConfigDict(extra="forbid")

    priority: int = Field(0, ge=-10, le=10, description="Job priority, -10 to 10: higher runs first (0 default).")
    metadata: dict[str, Any] | None = Field(
        None,
        description="Your own JSON object (at most 4 KB), echoed back in the job view: e.g. your ids.",
        examples=[{"order_id": "A-1001"}],
    )

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_text(cls, value: Any) -> Any:
        """A form field holds the object as JSON text."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("metadata must be a JSON object") from None
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
            if size > METADATA_MAX_BYTES:
                raise ValueError(f"metadata is {size} bytes as JSON; at most {METADATA_MAX_BYTES} are kept")
        return value

    @classmethod
    def split(cls, raw: dict[str, Any]) -> tuple[dict[str, Any], JobOptions]:
        """``raw`` request fields → (the engine's fields, the job options). Raises pydantic.ValidationError
        (locations are the option names)."""
        names = [name for name in cls.model_fields if name in raw]
        options = cls.model_validate({name: raw[name] for name in names})
        return {k: v for k, v in raw.items() if k not in names}, options

    @classmethod
    def schema_properties(cls) -> dict[str, Any]:
        """The options' JSON-schema properties, for the OpenAPI of every submit route."""
        return cls.model_json_schema()["properties"]

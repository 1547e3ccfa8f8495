"""Job-level options: fields about the job rather than the engine, the same for every engine and every input
form (JSON body; form fields or the ``params`` part of a multipart submit), beside the engine's parameters, as
Replicate's API does. No engine may declare a parameter with a reserved name (the conformance test checks it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from cadenza.engines.base import RequestModel
from cadenza.jobs.urls import WebhookPolicy, check_webhook_url

RESERVED_OPTION_NAMES = frozenset({"priority", "metadata", "webhook", "webhook_events_filter"})
"""Names reserved for job-level options; no engine may declare a parameter with one of them."""
METADATA_MAX_BYTES = 4096
WebhookEvent = Literal["start", "progress", "output", "completed"]
WEBHOOK_EVENTS: tuple[str, ...] = ("start", "progress", "output", "completed")


def webhook_context(policy: WebhookPolicy | Iterable[str]) -> dict[str, Any]:
    """The validation context that checks ``webhook`` against ``policy`` (``WebhookPolicy.from_settings(s)``)."""
    return {"webhook_policy": WebhookPolicy.of(policy)}


class JobOptions(RequestModel):
    """``priority``: −10…10 (an integer, never a boolean), higher runs first (0 default). ``metadata``: a JSON
    object of at most 4 KB (as compact JSON) that the job view echoes back: the client's own ids."""

    model_config = ConfigDict(extra="forbid")

    priority: int = Field(0, ge=-10, le=10, description="Job priority, -10 to 10: higher runs first (0 default).")
    metadata: dict[str, Any] | None = Field(
        None,
        description="Your own JSON object (at most 4 KB), echoed back in the job view: e.g. your ids.",
        examples=[{"order_id": "A-1001"}],
    )
    webhook: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]",
        description="An https URL told about the job (Standard Webhooks: signed with the server's secret, retried "
        "with backoff for about a day). Private, loopback and plain-http addresses need `webhook_allowed_hosts`.",
        examples=["https://example.com/hooks/cadenza"],
    )
    webhook_events_filter: list[WebhookEvent] | None = Field(
        None,
        min_length=1,
        description="Which events are sent to `webhook`: `start`, `progress`, `output`, `completed` (any final "
        'status). Default `["completed"]`.',
        examples=[["start", "completed"]],
    )

    @field_validator("webhook_events_filter", mode="before")
    @classmethod
    def _events_text(cls, value: Any) -> Any:
        """A form field holds the list as JSON text or comma-separated names."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError("webhook_events_filter must be a JSON list of event names") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("webhook_events_filter")
    @classmethod
    def _events_unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [e for e in WEBHOOK_EVENTS if e in value]

    @field_validator("webhook")
    @classmethod
    def _webhook_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return check_webhook_url(value, (info.context or {}).get("webhook_policy", WebhookPolicy()))

    @property
    def webhook_events(self) -> list[str] | None:
        """The events sent to ``webhook`` (None without one)."""
        if self.webhook is None:
            return None
        return list(self.webhook_events_filter or ["completed"])

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
    def split(
        cls, raw: dict[str, Any], policy: WebhookPolicy | Iterable[str] = ()
    ) -> tuple[dict[str, Any], JobOptions]:
        """``raw`` request fields → (the engine's fields, the job options); ``policy`` is where webhooks may go
        (``WebhookPolicy.from_settings``, or a bare ``webhook_allowed_hosts`` list). Raises
        pydantic.ValidationError (locations are the option names)."""
        names = [name for name in cls.model_fields if name in raw]
        options = cls.model_validate({name: raw[name] for name in names}, context=webhook_context(policy))
        return {k: v for k, v in raw.items() if k not in names}, options

    @classmethod
    def schema_properties(cls) -> dict[str, Any]:
        """The options' JSON-schema properties, for the OpenAPI of every submit route."""
        return cls.model_json_schema()["properties"]

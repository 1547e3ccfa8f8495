"""A test engine defined only in the tests (kind ``echo``): one JSON field and one optional MIDI input.

It is registered with the ``plugins`` setting (``["echo_engine"]``) and touches no file of the project:
its submit route, OpenAPI entry, upload-by-reference, CLI command and conformance checks all come from
this declaration.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cadenza.engines.base import CommandSpec, EngineSpec, InputSpec, RequestModel


class EchoRequest(RequestModel):
    """Echo ``text`` back, with the note count of the optional ``seed_midi``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200, description="What to echo.")
    repeat: int = Field(1, ge=1, le=10)
    sleep_s: float = Field(0.0, ge=0, le=120, description="Keep running this long (reporting progress).")


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_midi_bytes: int = Field(64 * 1024, gt=0)
    prefix: str = ""


ENGINE = EngineSpec(
    kind="echo",
    route="echoes",
    summary="Echo text (test engine).",
    request_model=EchoRequest,
    run="echo_engine.engine:run",
    list_models="echo_engine.engine:list_models",
    retry_on_crash=False,
    example={"text": "hello", "repeat": 2},
    inputs=(
        InputSpec(
            name="seed_midi",
            kind="midi",
            description="A Standard MIDI File whose notes are counted.",
            required=False,
            extensions=(".mid", ".midi"),
            max_bytes="echo_engine.engine:max_midi_bytes",
            probe="echo_engine.engine:probe_midi",
            example="echo_engine.engine:example_midi",
        ),
    ),
    settings_model=EchoSettings,
    commands=(CommandSpec("", "echo", "echo_engine.cli:run_command", "Echo text locally (test engine)."),),
)

"""Hot reload of what users edit, without a restart: ``SIGHUP`` to ``cadenza serve`` or
``POST /v1/admin/reload`` (the admin key when auth is on).

The configuration is read again from where it came from (``--config``/``CADENZA_CONFIG``, the
environment, the command-line flags). The settings of :data:`RELOADABLE` take effect at once (rate
limit, retention, CORS); each engine's catalogues (style and preset files) are re-read and validated,
and the report says what they gained or lost since the last (re)load. Any other setting that differs is
named in ``needs_restart`` and left as it was: the report never pretends that a change took effect. An
invalid configuration or catalogue changes no setting and answers 422. (Engines re-read a catalogue
file by themselves once it changes on disk; the reload is how an operator validates an edit and sees
its effect.)
"""

from __future__ import annotations

from typing import Any

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field

from cadenza.engines import registry
from cadenza.settings import Settings

log = structlog.get_logger("cadenza.reload")

#: Settings applied by a reload; every other difference needs a restart.
RELOADABLE = (
    "rate_limit",
    "retention_completed_h",
    "retention_failed_h",
    "retention_uploads_h",
    "cleanup_interval_s",
    "cors_origins",
    "max_queued_jobs",
)


class ReloadReport(BaseModel):
    """What a reload did."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "changed": {"rate_limit": ["120/minute", "600/minute"], "retention_completed_h": [24.0, 72.0]},
                    "catalogues": {"drums.styles": {"added": ["Basement Shuffle"], "removed": []}},
                    "needs_restart": ["workers"],
                }
            ]
        }
    )

    changed: dict[str, list[Any]] = Field(
        description="Applied settings: `{name: [old, new]}` (secrets are never shown)."
    )
    catalogues: dict[str, dict[str, list[str]]] = Field(
        description="Per engine and catalogue: `added` and `removed` entry names since the last (re)load."
    )
    needs_restart: list[str] = Field(description="Settings that differ but only apply after a restart.")


class ReloadFailed(ValueError):
    """The new configuration or a catalogue is invalid; nothing was applied."""


def snapshot_catalogues(settings: Settings) -> dict[str, dict[str, list[str]]]:
    """``{kind: {catalogue: [entry names]}}`` of every engine with a ``catalogues`` hook."""
    found = {}
    for spec in registry.of(settings).engines():
        hook = spec.resolve("catalogues")
        if hook is not None:
            found[spec.kind] = {name: list(entries) for name, entries in hook(settings).items()}
    return found


def _differences(old: BaseModel, new: BaseModel, prefix: str = "") -> list[str]:
    names = []
    for name in type(old).model_fields:
        a, b = getattr(old, name), getattr(new, name)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if isinstance(a.get(key), BaseModel) and isinstance(b.get(key), BaseModel):
                    names += _differences(a[key], b[key], f"{prefix}{name}.{key}.")
                elif a.get(key) != b.get(key):
                    names.append(f"{prefix}{name}.{key}")
        elif a != b:
            names.append(prefix + name)
    return names


def reload_app(app: Any) -> ReloadReport:
    """Re-read the configuration and catalogues of ``app`` and apply what can change at run time.

    Raises :class:`ReloadFailed` (nothing applied) when the configuration or a catalogue is invalid."""
    old: Settings = app.state.settings
    try:
        new: Settings = app.state.settings_source()
        changed = {n: [getattr(old, n), getattr(new, n)] for n in RELOADABLE if getattr(old, n) != getattr(new, n)}
        applied = old.model_copy(update={name: getattr(new, name) for name in changed})
        catalogues = snapshot_catalogues(applied)  # the catalogue files in effect (their paths need a restart)
    except (ValueError, OSError, yaml.YAMLError) as exc:  # ValidationError, UnknownSettingError, StyleCatalogError
        raise ReloadFailed(str(exc)) from exc
    needs_restart = [name for name in _differences(old, new) if name not in RELOADABLE]
    before = getattr(app.state, "catalogues", None) or {}
    report_catalogues = {}
    for kind, entries in catalogues.items():
        for name, names in entries.items():
            previous = before.get(kind, {}).get(name, [])
            report_catalogues[f"{kind}.{name}"] = {
                "added": [n for n in names if n not in previous],
                "removed": [n for n in previous if n not in names],
            }
    app.state.settings = applied
    if app.state.service is not None:
        app.state.service.settings = applied  # retention and the overload guard read it
    app.state.catalogues = catalogues
    report = ReloadReport(changed=changed, catalogues=report_catalogues, needs_restart=needs_restart)
    log.info("reloaded", **report.model_dump())
    return report

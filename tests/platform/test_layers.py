"""The layers: the API, the job layer, the settings and the CLI never name an engine in code (comments and
docs examples may), and engines never import ``cadenza.api`` or ``cadenza.jobs``."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "cadenza"
ENGINE_NAMES = re.compile(r"drums|separation|demucs|melod|\btracks?\b|genre", re.IGNORECASE)


def _code_tokens(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    skip = {tokenize.COMMENT, tokenize.STRING} | {getattr(tokenize, n, -1) for n in ("FSTRING_MIDDLE",)}
    return [(tok.start[0], tok.string) for tok in tokens if tok.type not in skip]


def test_platform_code_never_names_an_engine() -> None:
    files = [*(SRC / "api").rglob("*.py"), *(SRC / "jobs").rglob("*.py"), SRC / "settings.py", SRC / "cli" / "main.py"]
    hits = [
        f"{path}:{line}: {text}" for path in files for line, text in _code_tokens(path) if ENGINE_NAMES.search(text)
    ]
    assert not hits, hits


def test_engines_never_import_the_api_or_the_job_layer() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+cadenza\.(api|jobs)\b", re.MULTILINE)
    offenders = [str(p) for p in (SRC / "engines").rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert not offenders, offenders

"""``/v1/tracks/genres`` and ``/v1/tracks/interpret``: the genre catalogue, and what a prompt will make before
it is made (mounted by the API from ``ENGINE.router``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from cadenza.engines.base import EngineInputError, EngineProblem, problem_responses
from cadenza.engines.track.genres import Genre, genres_for
from cadenza.engines.track.schema import TrackRequest

router = APIRouter(prefix="/v1/tracks", tags=["track"])


class GenreList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 1, "genres": []}]})

    count: int
    genres: list[Genre]


@router.get("/genres", response_model=GenreList, summary="List track genres", responses=problem_responses())
def list_genres(request: Request) -> GenreList:
    """The genres a prompt or the ``genre`` field can name (built-in, merged with ``engines.track.genres_path``):
    tempo range, drum style, instruments, progressions, form and mix."""
    genres = list(genres_for(request.app.state.settings).values())
    return GenreList(count=len(genres), genres=genres)


PLAN_EXAMPLE: dict[str, Any] = {
    "prompt": "lo-fi hip hop, 84 bpm, A minor, dusty Rhodes, 20 seconds",
    "seed": 1,
    "interpretation": {
        "genre": {"value": "lo-fi hip hop", "source": "prompt", "words": "lo-fi hip hop"},
        "tempo_bpm": {"value": 84.0, "source": "prompt", "words": "84 bpm"},
        "time_signature": {"value": [4, 4], "source": "genre default (lo-fi hip hop)"},
        "key": {"value": "A minor", "source": "prompt", "words": "a minor"},
        "duration_s": {"value": 20.0, "source": "prompt", "words": "20 seconds"},
        "moods": {"value": ["dusty"], "source": "prompt", "words": "dusty"},
        "unused_words": [],
        "filler_words": [],
    },
    "genre": "lo-fi hip hop",
    "tempo_bpm": 84.0,
    "key": "A minor",
    "midi_key_signature": "Am",
    "time_signature": [4, 4],
    "bars": 7,
    "bar_s": 2.857143,
    "duration_s": 20.0,
    "loop": False,
    "sections": [{"name": "chorus", "start_bar": 0, "bars": 7, "start_s": 0.0, "energy": 0.8}],
    "chords": ["i", "bVImaj7", "iv7", "v7", "i7", "V7", "i"],
    "parts": [
        {"name": "drums", "role": "drums", "program": None, "instrument": "drums (drums)", "source": "genre"},
        {
            "name": "harmony",
            "role": "harmony",
            "program": 4,
            "instrument": "harmony (Electric Piano 1)",
            "source": "prompt: rhodes",
        },
    ],  # fmt: skip
    "drum_style": "J Dilla",
    "warnings": [],
}


class TrackPlan(BaseModel):
    """What a track request will make: each value with where it came from, the form, chords and parts."""

    model_config = ConfigDict(json_schema_extra={"examples": [PLAN_EXAMPLE]})

    prompt: str
    seed: int
    interpretation: dict[str, Any]
    genre: str
    tempo_bpm: float
    key: str
    midi_key_signature: str | None
    time_signature: list[int]
    bars: int
    bar_s: float
    duration_s: float
    loop: bool
    sections: list[dict[str, Any]]
    chords: list[str]
    parts: list[dict[str, Any]]
    drum_style: str | None
    warnings: list[str]


@router.post(
    "/interpret",
    response_model=TrackPlan,
    summary="Show what a track request will make, without making it",
    responses=problem_responses(400, 422),
)
async def interpret(body: TrackRequest, request: Request) -> dict[str, Any]:
    """The plan of a request: what each value was taken from (the request, the prompt's words, a mood, the
    genre), words not understood, the form in bars and seconds, the chords and the parts. Same request and
    seed → the same plan the job will use."""
    from cadenza.engines.track.engine import interpret as plan_of

    try:
        return await anyio.to_thread.run_sync(plan_of, body, request.app.state.settings)
    except EngineInputError as exc:
        raise EngineProblem(422, "Request Cannot Be Served", str(exc)) from exc

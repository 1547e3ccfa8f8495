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


@router.post(
    "/interpret",
    summary="Show what a track request will make, without making it",
    responses=problem_responses(422),
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

"""Loaded melody models are bounded per worker: an LRU of ``engines.melody.max_loaded_models`` and an idle timeout
(``engines.melody.model_idle_s``), through ``engines.base.cached_model`` (the policy every engine's loads share)."""

from __future__ import annotations

from pathlib import Path

from cadenza.engines.base import RunContext, cached_model, cached_model_ids, evict_idle_models
from cadenza.engines.melody.engine import load_model, unload_model
from cadenza.settings import Settings


def context(tmp_path: Path, **melody: object) -> RunContext:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", files_dir=tmp_path, engines={"melody": melody}
    )
    return RunContext(workdir=tmp_path, models_dir=tmp_path, cache={}, settings=settings)


def test_the_least_recently_used_model_goes_first(tmp_path: Path) -> None:
    ctx = context(tmp_path, max_loaded_models=2)
    loads: list[str] = []

    def loader(name: str):
        return lambda: loads.append(name) or name

    for name in ("a", "b", "a", "c", "a", "b"):
        assert cached_model("melody", name, ctx, loader(name)) == name
    # a, b loaded; a used again; c evicts b (least recent); b evicts c (a was used after c)
    assert loads == ["a", "b", "c", "b"]
    assert cached_model_ids(ctx.cache) == {"a", "b"}
    single = context(tmp_path, max_loaded_models=1)
    for name in ("a", "b", "b", "a"):
        cached_model("melody", name, single, loader(name))
        assert cached_model_ids(single.cache) == {name}
    assert loads[4:] == ["a", "b", "a"]


def test_idle_models_are_evicted_and_unload_forgets_them(tmp_path: Path) -> None:
    ctx = context(tmp_path, model_idle_s=60)
    net, _ = load_model("melody-transformer", ctx)
    assert cached_model_ids(ctx.cache) == {"melody-transformer"}
    assert evict_idle_models(ctx.cache, ctx.settings) == set()  # used just now
    far_future = 10**9
    assert evict_idle_models(ctx.cache, ctx.settings, now=far_future) == {"melody-transformer"}
    assert cached_model_ids(ctx.cache) == set() and "melody-model:melody-transformer" not in ctx.cache
    assert load_model("melody-transformer", ctx)[0] is not net  # loaded again on the next use
    unload_model("melody-transformer", ctx)
    assert cached_model_ids(ctx.cache) == set()
    never = context(tmp_path, model_idle_s=None)
    load_model("melody-transformer", never)
    assert evict_idle_models(never.cache, never.settings, now=far_future) == set()

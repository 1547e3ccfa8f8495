"""Progress that tells the truth: decoding/resampling, each block and its steps, then encoding."""

from __future__ import annotations

from cadenza.engines.separation import ENGINE, SeparationRequest


def test_progress_moves_through_resampling_each_block_and_encoding(write_song, make_ctx):
    """Regression: a first separation sat at "0 % decoding" and then jumped to 90 %."""
    song = write_song("song.wav", seconds=12.0, sample_rate=96000)  # hpss resamples to 48 kHz first
    reports: list[tuple[float, str]] = []
    ENGINE.resolve("run")(
        SeparationRequest(model="hpss", segment_s=3.0, output_format="flac", pcm_type="PCM_16"),
        lambda percent, stage="": reports.append((percent, stage)),
        make_ctx(song),
    )
    percents = [p for p, _ in reports]
    assert percents == sorted(percents) and percents[-1] == 100.0
    order = [s.split(" ")[0] for _, s in reports]
    order = [s for i, s in enumerate(order) if i == 0 or s != order[i - 1]]
    assert order == ["decoding", "resampling", "separating", "encoding"], order
    resampling = [p for p, s in reports if s == "resampling"]
    separating = [p for p, s in reports if s.startswith("separating")]
    encoding = [p for p, s in reports if s == "encoding"]
    assert resampling and max(resampling) <= 5.0
    assert len(set(separating)) >= 10 and min(separating) >= 5.0 and max(separating) <= 90.0
    assert encoding and min(encoding) >= 90.0
    assert max(b - a for a, b in zip(percents, percents[1:], strict=False)) <= 15.0  # no big jumps

"""Melody tokens: MidiTok's REMI over the key-normalised tune, after a mode token.

REMI (Huang & Yang, "Pop Music Transformer", ACM MM 2020), as implemented by MidiTok 3: per bar a ``Bar``
and a ``TimeSig_n/d`` token, per note ``Position_p`` (onset in the bar), ``Pitch_p`` and ``Duration_d``.
For a monophonic folk melody this is about 3.5 tokens per note. No velocity tokens (the corpus has none to
learn), no rest tokens (positions already say where notes start). The grid is 12 positions per beat
(16ths, 8th and 16th triplets).

A sequence is ``BOS, Mode_<mode>, REMI tokens…, EOS``. Pitches are relative to a tonic moved to C
(``corpus.tonic_shift``), so the mode token plus the pitches are scale degrees and every key works:
generation transposes back to the requested tonic.

**Cut time.** 2/2 tunes (the reels, 28 % of the corpus) are tokenised as 4/4, the same bar length: MidiTok
3.1's REMI misplaces note positions in x/2 meters (measured on 20 reels: 529 of 4,148 notes kept their
position; 4/4, 2/4, 6/8 and 9/8 are exact). A request in 2/2 generates 4/4 tokens and writes 2/2 into its
files. ``TOKEN_METERS`` maps each meter to the meter its tokens use.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import miditok
import symusic

from cadenza.engines.melody.corpus import MODES, TICKS_PER_QUARTER, Note, Tune

PITCH_RANGE = (36, 96)


def config() -> miditok.TokenizerConfig:
    """The tokenizer's configuration (fixed: a checkpoint is only valid with the vocabulary it was trained on)."""
    return miditok.TokenizerConfig(
        pitch_range=PITCH_RANGE,
        beat_res={(0, 4): 12, (4, 12): 4},
        use_velocities=False,
        use_time_signatures=True,
        use_tempos=False,
        use_programs=False,
        use_rests=False,
        time_signature_range={8: [3, 6, 9, 12], 4: [2, 3, 4]},
        special_tokens=["PAD", "BOS", "EOS", *(f"Mode_{mode}" for mode in MODES)],
    )


@lru_cache(maxsize=1)
def tokenizer() -> miditok.REMI:
    """The (cached) REMI tokenizer."""
    return miditok.REMI(config())


TOKEN_METERS: dict[tuple[int, int], tuple[int, int]] = {(2, 2): (4, 4)}


def token_meter(numerator: int, denominator: int) -> tuple[int, int]:
    """The meter a tune's tokens are written in (see "Cut time" above)."""
    return TOKEN_METERS.get((numerator, denominator), (numerator, denominator))


def tune_score(notes: Sequence[Note], numerator: int, denominator: int) -> symusic.Score:
    """A one-track score at ``TICKS_PER_QUARTER`` ticks per quarter of ``notes`` (in its token meter)."""
    numerator, denominator = token_meter(numerator, denominator)
    score = symusic.Score(TICKS_PER_QUARTER)
    track = symusic.Track("melody", 0, False)
    for note in notes:
        track.notes.append(symusic.Note(note.onset, note.duration, note.pitch, 100))
    score.tracks.append(track)
    score.time_signatures.append(symusic.TimeSignature(0, numerator, denominator))
    return score


def encode(tune: Tune) -> list[int]:
    """Token ids of a tune: ``BOS, Mode_<mode>, REMI…, EOS``."""
    tok = tokenizer()
    sequence = tok.encode(tune_score(tune.notes, tune.numerator, tune.denominator))
    sequence = sequence[0] if isinstance(sequence, list) else sequence
    return [tok["BOS_None"], tok[f"Mode_{tune.mode}"], *sequence.ids, tok["EOS_None"]]


def is_note_start(token: str) -> bool:
    """Tokens that begin a note (its ``Position``): bits per note divide by the number of these."""
    return token.startswith("Pitch_")

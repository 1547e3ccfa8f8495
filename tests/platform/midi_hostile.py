"""Hostile MIDI files that are small on disk but describe huge or broken pieces (issue: bounded MIDI inputs).

Each entry is ``name -> (bytes, limit)``: ``limit`` is what :func:`cadenza.music.midi_input.read_midi` must
name when it refuses the file with the default limits. The files of ``../shared/data/hostile-midi`` (found
by attacking the server) are read from there; the others are written here, from their description.
"""

from __future__ import annotations

import struct
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "../shared/data/hostile-midi"
END = b"\x00\xff\x2f\x00"


def vlq(n: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def smf(tracks: list[bytes], division: int = 480, fmt: int = 1) -> bytes:
    """A Standard MIDI File of the given track bodies (each without its ``MTrk`` header)."""
    body = b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)
    return b"MThd" + struct.pack(">IHHh", 6, fmt, len(tracks), division) + body


def notes(count: int, gap: int, *, channel: int = 9, pitch: int = 36, length: int = 1) -> bytes:
    """``count`` notes ``gap`` ticks apart (``length`` ticks long) on ``channel``, ended."""
    on, off = 0x90 | channel, 0x80 | channel
    events = b"".join(
        vlq(gap - length if i else 0) + bytes([on, pitch, 100]) + vlq(length) + bytes([off, pitch, 0])
        for i in range(count)
    )
    return events + END


def hostile_midis() -> dict[str, tuple[bytes, str]]:
    """Every hostile file and the limit its refusal names."""
    files = {
        "repro_div0": ((SHARED / "repro_div0.mid").read_bytes(), "division"),
        "repro_far": ((SHARED / "repro_far.mid").read_bytes(), "max_span_quarters"),
        # make_sparse.py's file: 50,000 notes 500 ticks apart at division 1 (about 450 KB)
        "sparse": (smf([notes(50_000, 500)], division=1, fmt=0), "max_notes"),
        # the same, under the note limit: still 5 million quarter notes
        "sparse-10000-notes": (smf([notes(10_000, 500)], division=1, fmt=0), "max_span_quarters"),
        "dense-100000-notes": (smf([notes(100_000, 2)], division=480, fmt=0), "max_notes"),
        "tempo-zero": (smf([b"\x00\xff\x51\x03\x00\x00\x00" + notes(8, 240)]), "tempo_bpm"),
        "smpte-division": (smf([notes(8, 240)], division=-(25 << 8) + 40), "division"),
        "meter-0-4": (smf([b"\x00\xff\x58\x04\x00\x02\x18\x08" + notes(8, 240)]), "time_signature"),
        "65-tracks": (smf([notes(1, 240)] * 65), "max_tracks"),
        "over-1-mib": (smf([b"\x00\xff\x01" + vlq(1_100_000) + b"x" * 1_100_000 + notes(8, 240)]), "max_bytes"),
    }
    return files

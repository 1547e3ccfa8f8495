"""Facts of audio formats that light modules (request schemas) need without importing NumPy or soundfile."""

from __future__ import annotations

MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
"""Sample rates (Hz) MPEG-1, MPEG-2 and MPEG-2.5 Layer III allow (ISO/IEC 11172-3, ISO/IEC 13818-3)."""

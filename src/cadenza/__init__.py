"""Cadenza: a self-hosted music-AI server (drums, melody, track, separation engines behind one job API)."""

__version__ = "0.1.0"

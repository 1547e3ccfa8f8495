"""Evaluation of the separation engine (synthetic SDR benchmark): not imported by the runtime engine."""

"""Training and evaluation of the drums model (GMD): not imported by the runtime engine."""

"""Hypothesis without its per-example deadline: a property is about values, not time, and a
loaded CI machine (e2e sandboxes beside it) would fail it for being slow."""

from hypothesis import settings

settings.register_profile("glideslope", deadline=None)
settings.load_profile("glideslope")

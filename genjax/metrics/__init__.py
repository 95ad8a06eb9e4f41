"""Metrics that know only the model API."""

from genjax.metrics.likelihood import bits_per_dim

__all__ = ["bits_per_dim"]

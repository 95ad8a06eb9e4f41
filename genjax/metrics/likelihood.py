"""Likelihood units: nats <-> bits per dimension, with the dequantization convention.

The formula lives on the bottom floor (:mod:`genjax._units`, shared with the flows);
this is its public home.
"""

from genjax._units import bits_per_dim

__all__ = ["bits_per_dim"]

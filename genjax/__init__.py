"""genjax: deep generative models as pure JAX functions.

Subpackages: ``data`` (toy densities, image sets, batching), ``train`` (state, steps,
``fit``), ``vae``, ``gan``, ``flows``, ``metrics``; ``types`` holds the model API.
"""

__version__ = "0.1.0"

from genjax import data, flows, gan, metrics, train, types, vae  # noqa: E402
from genjax.types import GenerativeModel  # noqa: E402

__all__ = ["GenerativeModel", "data", "flows", "gan", "metrics", "train", "types", "vae", "__version__"]

"""CLIP trained from scratch (Radford et al. 2021): contrastive image-text embeddings.

``CLIP`` (models.py) is an image tower and a text tower projected to one L2-normalised space,
trained with the symmetric InfoNCE (objectives.py) by ``genjax.train.fit`` with
``transform=pick_caption``; ``clip_small`` / ``clip_gpu`` (constructors.py) build it.
"""

from genjax.clip.constructors import SIZES, clip_gpu, clip_model, clip_small
from genjax.clip.models import CLIP, CLIPNet, FrozenTextEncoder, pick_caption, prompt_ensemble
from genjax.clip.objectives import (
    INIT_TEMPERATURE,
    MAX_LOGIT_SCALE,
    clip_logits,
    init_log_scale,
    l2_normalize,
    logit_scale,
    symmetric_info_nce,
)

__all__ = [
    "CLIP",
    "CLIPNet",
    "FrozenTextEncoder",
    "INIT_TEMPERATURE",
    "MAX_LOGIT_SCALE",
    "SIZES",
    "clip_gpu",
    "clip_logits",
    "clip_model",
    "clip_small",
    "init_log_scale",
    "l2_normalize",
    "logit_scale",
    "pick_caption",
    "prompt_ensemble",
    "symmetric_info_nce",
]

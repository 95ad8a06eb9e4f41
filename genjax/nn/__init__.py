from genjax.nn.fourier import FourierDiscriminator  # noqa: F401  (the packed 2-D critic)
from genjax.nn.attention import CrossAttention, CrossAttentionBlock, dot_product_attention  # noqa: F401
from genjax.nn.transformer import TextTransformer, TransformerBlock  # noqa: F401  (the text encoder)
from genjax.nn.prior import PriorTransformer  # noqa: F401  (the diffusion prior of unCLIP)

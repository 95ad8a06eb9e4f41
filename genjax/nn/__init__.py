from genjax.nn.fourier import FourierDiscriminator  # noqa: F401  (the packed 2-D critic)

"""One set of defaults for the ResNet VAE in both backends (the CLI flags map onto these fields)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

__all__ = ["ResNetVAEConfig", "LIKELIHOODS", "PRESETS"]

LIKELIHOODS = ("bernoulli", "logistic")


@dataclass(frozen=True)
class ResNetVAEConfig:
    """Shapes, posterior and optimiser of the paper's ResNet VAE (section 6.2, appendix C).

    Images ``[channels, side, side]``. A 5x5 stride-2 convolution maps them to ``hidden``
    feature maps at ``side / 2``; then ``stages`` groups of ``depth`` stochastic layers each, the
    first layer of every group after the first halving the side again (so ``side`` must be
    divisible by ``2 ** stages``). Every stochastic layer has ``zdim`` latent feature maps
    (``z [B, zdim, s, s]``) next to the ``hidden`` deterministic ones, and ``flows`` IAF steps
    (MADE over the ``zdim`` channels at each pixel, ``iaf_hidden`` units per hidden layer x 2,
    conditioned on the pixel's ``hidden``-channel context). ``flows = 0``: diagonal posterior.
    ``free_bits``: lambda in nats per latent feature map (0 = the plain ELBO).
    ``likelihood``: ``bernoulli`` (binary images) or ``logistic`` (discretized logistic, 8-bit).
    """

    side: int = 8
    channels: int = 1
    likelihood: str = "bernoulli"
    depth: int = 1
    stages: int = 2
    zdim: int = 4
    hidden: int = 16
    flows: int = 1
    iaf_hidden: int = 16
    free_bits: float = 0.0
    lr: float = 2e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"Unknown likelihood {self.likelihood!r}; expected one of {LIKELIHOODS}")
        for name in ("side", "channels", "depth", "stages", "zdim", "hidden", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.flows < 0 or self.iaf_hidden < 1:
            raise ValueError(f"flows must be >= 0 and iaf_hidden >= 1; got {self.flows}, {self.iaf_hidden}")
        if self.side % (2**self.stages):
            raise ValueError(f"side {self.side} is not divisible by 2**stages = {2**self.stages}; "
                             f"use fewer --stages")
        if self.free_bits < 0:
            raise ValueError(f"free_bits must be >= 0; got {self.free_bits}")

    @property
    def pixels(self) -> int:
        """Numbers per image, ``channels * side * side`` (the flat data width)."""
        return self.channels * self.side * self.side

    @property
    def num_layers(self) -> int:
        return self.depth * self.stages

    def layer_sides(self) -> list[int]:
        """Side of each stochastic layer's feature maps, bottom (nearest x) first."""
        return [self.side // 2 ** (1 + i // self.depth) for i in range(self.num_layers)]

    def downsamples(self, i: int) -> bool:
        """Whether stochastic layer ``i`` (bottom first) halves the side on the way up."""
        return i > 0 and i % self.depth == 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def preset(cls, name: str, **overrides) -> ResNetVAEConfig:
        """``tiny`` (8x8 digits, tests), ``mnist`` (a CPU-sized MNIST net), ``paper_mnist``,
        ``cifar10`` (the paper's CIFAR-10 sizes, depth 20 at 2 stages of 10)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS = {
    "tiny": ResNetVAEConfig(),
    "mnist": ResNetVAEConfig(side=28, depth=1, stages=2, zdim=8, hidden=32, flows=1, iaf_hidden=32,
                             free_bits=0.1, lr=2e-3, batch_size=64),
    "paper_mnist": ResNetVAEConfig(side=28, depth=2, stages=2, zdim=32, hidden=64, flows=1,
                                   iaf_hidden=64, free_bits=0.25, lr=2e-3, batch_size=32),
    "cifar10": ResNetVAEConfig(side=32, channels=3, likelihood="logistic", depth=10, stages=2,
                               zdim=32, hidden=160, flows=1, iaf_hidden=160, free_bits=0.25,
                               lr=2e-3, batch_size=32),
}

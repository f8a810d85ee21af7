"""One set of defaults for both backends (the CLI flags map onto these fields)."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields

from .nets import ARCHS, Arch

__all__ = ["VAEConfig", "POSTERIORS", "OPTIMIZERS", "GUIDES", "AUTO_AFFINES"]

POSTERIORS = ("iaf", "diagonal")
GUIDES = ("hand", "auto")
OPTIMIZERS = ("adam", "adamax")
AUTO_AFFINES = ("first", "last")


@dataclass(frozen=True)
class VAEConfig:
    """Networks, posterior and optimiser of a VAE run.

    ``flows`` IAF steps, each a MADE with two ELU hidden layers of ``width`` units conditioned on
    the encoder's context ``h`` (``context_dim``); gated (sigmoid) steps with gate bias 2, order
    reversed between steps. ``hidden``: width of the ``mlp`` encoder/decoder layers.
    ``free_bits``: lambda in nats per latent (0 = the plain ELBO). ``guide``: ``"hand"`` (this
    package's guide, :mod:`models.vae.model`) or ``"auto"`` (``AutoAmortizedIAF`` of
    ``pyro_iaf`` / ``numpyro_iaf`` with our encoder; IAF posterior, no free bits).
    ``auto_affine``: where ``--guide auto`` applies the encoder's ``mu, sigma``: ``"first"``
    (``z = IAF_h(mu + sigma * eps)``, the paper's and the hand guide's order) or ``"last"``
    (``z = mu + sigma * IAF_h(eps)``, the autoguide's default).
    """

    arch: str = "mlp"
    posterior: str = "iaf"
    latent_dim: int = 32
    context_dim: int = 32
    hidden: int = 300
    flows: int = 2
    width: int = 320
    free_bits: float = 0.0
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 100
    seed: int = 0
    guide: str = "hand"
    auto_affine: str = "first"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"Unknown arch {self.arch!r}; expected one of {ARCHS}")
        if self.posterior not in POSTERIORS:
            raise ValueError(f"Unknown posterior {self.posterior!r}; expected one of {POSTERIORS}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; expected one of {OPTIMIZERS}")
        if self.posterior == "iaf" and self.flows < 1:
            raise ValueError("--posterior iaf needs --flows >= 1 (or use --posterior diagonal)")
        if self.guide not in GUIDES:
            raise ValueError(f"Unknown guide {self.guide!r}; expected one of {GUIDES}")
        if self.guide == "auto" and (self.posterior != "iaf" or self.free_bits):
            raise ValueError("--guide auto builds an IAF posterior without free bits; use "
                             "--posterior iaf --free-bits 0, or --guide hand")
        if self.auto_affine not in AUTO_AFFINES:
            raise ValueError(f"Unknown auto_affine {self.auto_affine!r}; expected one of {AUTO_AFFINES}")
        if self.free_bits < 0:
            raise ValueError(f"free_bits must be >= 0; got {self.free_bits}")

    def arch_for(self, side: int) -> Arch:
        return Arch(self.arch, side, self.latent_dim, self.context_dim, self.hidden)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_defaults(cls) -> dict:
        """Each field's default (fills keys missing from older checkpoints)."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

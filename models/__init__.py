"""Models and tools around the two packages, in wings by role.

- ``models.api``, ``models.spec``: the write-once backend adapter (pyro-api with a ``"numpyro"``
  alias) and the ``ModelSpec``/``Reference`` records every benchmark model returns.
- ``models.targets``: the benchmark models (each written once for both backends), their registry
  and their NUTS references (``python -m models.targets.make_references``).
- ``models.compare``: the comparison harness (``python -m models.compare``), its metrics, report
  writer and the demo behind ``make demo`` (``python -m models.compare.demo``).
- ``models.bench``: one-off benchmark commands (``python -m models.bench.autoguide``,
  ``.ablate``, ``.amortized``, ``.parallel``, ``.synthesis``, ``.smoke_accelerator``).
- ``models.vae``, ``models.resnet_vae``, ``models.pixelcnn``: the image models of the IAF paper.

Imports run one way: targets and image models use the adapter; the harness uses targets and the
packages; nothing imports the harness or the benchmark commands. Importing this package imports
neither torch nor jax.
"""

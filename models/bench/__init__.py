"""Benchmark commands, each run as ``python -m models.bench.<name>`` and writing a table.

- ``autoguide``: gap to the exact log-evidence on linear-Gaussian targets, built-ins vs ours.
- ``ablate``: which of our defaults buys what (NumPyro).
- ``amortized``: ``AutoAmortizedIAF`` against ``AutoNormal`` on local latents.
- ``parallel``: data-parallel SVI speed-up over devices.
- ``synthesis``: sampling speed of the ResNet VAE vs a PixelCNN.
- ``smoke_accelerator``: a short end-to-end check on a GPU/TPU.
- ``large_data``: subsampled VI against NumPyro NUTS on a large logistic regression and hierarchy.
- ``stl_cost``: ms/step of ``AutoIAFNormal`` with and without the path-derivative gradient.
"""

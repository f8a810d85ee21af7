"""The comparison harness: fit guides on the benchmark models and report how close each gets.

- ``harness``: the command (``python -m models.compare``): cells x seeds, report, plots.
- ``cells``: one fit of one guide on one model (``run_cell``); ``guides``: the guide names.
- ``evidence``: importance-sampled log-evidence, PSIS k-hat, moment errors against a reference.
- ``report``: rows, markdown tables, plots; ``demo``: the small comparison behind ``make demo``.
"""

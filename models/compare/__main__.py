"""``python -m models.compare``: see :mod:`models.compare.harness`."""

from models.compare.harness import main

main()

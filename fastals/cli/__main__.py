"""``python -m fastals.cli``: the same as the ``fastals`` command (and ``python -m fastals``)."""
import sys

from fastals.cli import main

sys.exit(main())

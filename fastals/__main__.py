"""``python -m fastals``: the same as the ``fastals`` command."""
import sys

from fastals.cli import main

sys.exit(main())

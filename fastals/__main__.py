import sys

from fastals.cli import main

sys.exit(main())

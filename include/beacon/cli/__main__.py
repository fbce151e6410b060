"""`python -m beacon.cli` runs the same entry point as the `beacon` command."""

import sys

from beacon.cli import main

sys.exit(main())

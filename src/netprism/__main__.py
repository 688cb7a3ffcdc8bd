"""``python -m netprism`` (also what ``torchrun -m netprism`` runs)."""

import sys

from netprism.cli import main

sys.exit(main())

"""`python -m adkit` is the `adkit` command."""

import sys

from adkit.cli import main

sys.exit(main())

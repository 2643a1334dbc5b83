"""`python -m pbkit.cli ...`, the same as the `pbkit` script."""

import sys

from pbkit.cli.app import main

sys.exit(main())

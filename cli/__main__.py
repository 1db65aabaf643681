"""`python -m cli ...`: the same as the `switchboard` console script."""

import sys

from cli.app import main

sys.exit(main())

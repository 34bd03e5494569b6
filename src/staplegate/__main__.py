"""Allow `python -m staplegate`."""

import sys

from staplegate.cli import main

sys.exit(main())

"""``python -m interp.cli ...`` is ``interp ...`` (tests run the command line in a subprocess this way)."""

import sys

from interp.cli import main

sys.exit(main())

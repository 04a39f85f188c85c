"""``python -m daqapp``: the same command line as the ``daqapp`` script."""

import sys

from daqapp.cli import main

sys.exit(main())

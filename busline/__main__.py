"""``python -m busline``: the ``busline`` command."""

import sys

from busline.cli import main

sys.exit(main())

"""``python -m busline.cli``: the ``busline`` command."""

import sys

from busline.cli import main

sys.exit(main())

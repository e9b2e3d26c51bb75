"""Run the sample shop: ``python -m sample_app --help``."""

import sys

from sample_app.cli import main

if __name__ == "__main__":
    sys.exit(main())

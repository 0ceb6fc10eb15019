"""Thin entry point: `python scripts/validate.py [options]` = `jdmbayes validate [options]`."""

import sys

from jdmbayes.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))

"""Thin entry point: `python scripts/fit.py [options]` = `jdmbayes fit [options]`."""

import sys

from jdmbayes.cli import main

if __name__ == "__main__":
    sys.exit(main(["fit", *sys.argv[1:]]))

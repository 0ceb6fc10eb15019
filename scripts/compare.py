"""Thin entry point: `python scripts/compare.py [options]` = `jdmbayes compare [options]`."""

import sys

from jdmbayes.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))

"""Thin entry point: `python scripts/describe.py [options]` = `jdmbayes describe [options]`."""

import sys

from jdmbayes.cli import main

if __name__ == "__main__":
    sys.exit(main(["describe", *sys.argv[1:]]))

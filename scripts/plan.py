"""Thin entry point: `python scripts/plan.py DESIGN --from RUN [options]` = `jdmbayes plan ...`."""

import sys

from jdmbayes.cli import main

if __name__ == "__main__":
    sys.exit(main(["plan", *sys.argv[1:]]))

"""Thin entry point: `python scripts/designs.py [options]` = `jdmbayes designs [options]`:
the defaults fitted to 40 varied simulated designs with known truth (gates passed, truth
covered), written to `validation/designs/` (see `--help`)."""

import sys

from jdmbayes.cli import main

if __name__ == "__main__":
    sys.exit(main(["designs", *sys.argv[1:]]))

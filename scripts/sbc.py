"""Thin entry point: `python scripts/sbc.py [options]` = `jdmbayes sbc [options]`:
simulation-based calibration of every model on the bundled design, written to
`validation/sbc/` (`--replicates 200` by default; see `--help`)."""

import sys

from jdmbayes.cli import main

if __name__ == "__main__":
    sys.exit(main(["sbc", *sys.argv[1:]]))

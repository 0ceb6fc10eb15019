"""Thin entry point: `python scripts/sensitivity.py [options]` = `jdmbayes sensitivity
[options]`, e.g. `--model rash_milestones --priors default,vague,sceptical,enthusiastic`."""

import sys

from jdmbayes.cli import main

if __name__ == "__main__":
    sys.exit(main(["sensitivity", *sys.argv[1:]]))

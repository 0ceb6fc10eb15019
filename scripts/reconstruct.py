"""Regenerate the reconstructed Ding et al. (2021) series in data/ding2021/ (synthetic rows).

Refuses to write unless every published statistic is reproduced. Usage:
    python scripts/reconstruct.py [--seed N] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jdmbayes.data.published import load_published, recompute
from jdmbayes.data.reconstruction import generate_series

HERE = Path(__file__).resolve().parent.parent / "data" / "ding2021"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20211028)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    tables = generate_series(args.seed)
    checks = recompute(tables["subjects"], tables["events"], tables["measurements"],
                       load_published(HERE / "published.toml"))
    for check in checks:
        print(check)
    if not all(c.ok for c in checks):
        print("not written: some published statistics are not reproduced", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(args.out / f"{name}.csv", index=False, float_format="%.10g",
                     lineterminator="\n")
    print(f"wrote {len(checks)} reproduced statistics' series to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Copy a finished run's headline files into docs/results/<preset>/, where the repository keeps
them (results/ is not tracked): the claims, the paper comparison, each protocol's main table (as
Markdown to read and CSV, with every interval and mark, to compute with) and its Figure 4 and
privacy-utility plot.

    python scripts/publish_results.py cifar10-cpu table2_cifar10_cnn figure4_cifar10-cnn privacy_utility_cifar10-cnn
"""

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="the run's preset name (results/<preset>/)")
    parser.add_argument("table", help="the main table's file stem, e.g. table2_cifar10_cnn")
    parser.add_argument("figures", nargs="*", help="figure stems under each protocol's figures/")
    parser.add_argument("--summary", default="summary", help="the run's summary folder (config `summary`)")
    args = parser.parse_args(argv)
    run, dest = ROOT / "results" / args.preset, ROOT / "docs" / "results" / args.preset
    wanted = {
        run / args.summary / "tables" / f"{name}.{ext}": f"{name}.{ext}"
        for name in ("claims", "paper_comparison")
        for ext in ("md", "csv")
    }
    protocols = sorted(p.name for p in run.iterdir() if (p / "tables").is_dir() and p.name != args.summary)
    for protocol in protocols:
        for ext in ("md", "csv"):
            wanted[run / protocol / "tables" / f"{args.table}.{ext}"] = f"{args.table}_{protocol}.{ext}"
        for figure in args.figures:
            wanted[run / protocol / "figures" / f"{figure}.png"] = f"{figure}_{protocol}.png"
    missing = [str(path) for path in wanted if not path.exists()]
    if missing:
        print("not there (has the run finished?):\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    for source, name in wanted.items():
        shutil.copyfile(source, dest / name)
        print(dest.relative_to(ROOT) / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

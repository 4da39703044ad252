"""Run every benchmark, then write docs/benchmarks.md: `python -m bench` (what `make bench` runs)."""

import argparse
import sys

from bench import e2e_bench, matcher_bench, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the matcher and end-to-end benchmarks and write the report.")
    parser.add_argument("--quick", action="store_true", help="small counts and short runs, as a smoke test")
    parser.add_argument("--skip-e2e", action="store_true", help="run only the matcher benchmark")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []

    if matcher_bench.main(quick) != 0:
        return 1
    if not args.skip_e2e and e2e_bench.main(quick) != 0:
        return 1
    return report.main()


if __name__ == "__main__":
    sys.exit(main())

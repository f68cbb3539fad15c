"""`make bench`: the benchmark suite (filled in by the benchmarks issue)."""

import sys

if __name__ == "__main__":
    print("No benchmarks are defined yet; see bench/README.md.", file=sys.stderr)
    sys.exit(1)

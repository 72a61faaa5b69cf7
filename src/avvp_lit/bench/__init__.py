"""`avvp-bench WHAT ...`: throughput benchmarks that print figures (data, metrics, models).

Each benchmark lives in its own module `avvp_lit.bench.<what>` exposing `main(argv)`.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("data", "metrics", "models")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: avvp-bench {{{','.join(BENCHMARKS)}}} [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(f"avvp_lit.bench.{argv[0]}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())

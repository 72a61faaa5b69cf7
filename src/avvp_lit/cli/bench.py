"""`avvp-bench WHAT ...`: throughput benchmarks that print figures (data, metrics, models, recipe).

Each benchmark lives in its own module `avvp_lit.bench.<what>` exposing `main(argv)`.
"""

from __future__ import annotations

import importlib
import sys

from avvp_lit.utils.errors import run_cli

BENCHMARKS = ("data", "extract", "metrics", "models", "recipe")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: avvp-bench {{{','.join(BENCHMARKS)}}} [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(f"avvp_lit.bench.{argv[0]}")
    return run_cli(f"avvp-bench {argv[0]}", lambda: int(module.main(argv[1:]) or 0), argv)


if __name__ == "__main__":
    sys.exit(main())

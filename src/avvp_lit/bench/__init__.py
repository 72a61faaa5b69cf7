"""Throughput benchmarks that print figures (``avvp-bench data|metrics|models|recipe``,
:mod:`avvp_lit.cli.bench`); each module exposes ``main(argv)``."""

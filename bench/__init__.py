"""Benchmarks of tokenledger's hot paths, each next to a raw baseline measured in the same run.

Run one with ``python -m bench.<name>`` (for instance ``python -m bench.append --seconds 10``); each
starts a throw-away embedded PostgreSQL unless ``BENCH_DATABASE_URL`` names a server to use.
Results and how to read them are in BENCHMARKS.md at the top of the repository.
"""

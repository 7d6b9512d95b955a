"""Benchmarks and operator scripts, run as ``python bench/NAME.py`` (tests import ``bench.mongo_explain``)."""

"""Benchmarks of the pivot pipeline; see ``bench/README.md``. Not part of the installed package."""

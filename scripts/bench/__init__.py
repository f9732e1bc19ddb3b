"""Benchmarks (run as scripts: .venv/bin/python scripts/bench/<name>.py); see docs/benchmarks.md."""

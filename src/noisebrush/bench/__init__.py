"""Benchmarks: side-by-side tables and JSON, measured as ratios within one run. Never timed in tests.

    python -m noisebrush.bench samplers --quick --json out.json
"""

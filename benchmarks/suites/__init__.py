"""The pytest-benchmark suites and what drives a run: targets, cases, harness (see `benchmarks`)."""

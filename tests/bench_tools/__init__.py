"""Unit tests of the benchmark tools: statistics, report, series, compare, harness checks."""

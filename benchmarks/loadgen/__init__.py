"""The C load generator and the build of the benchmarks' C programs (see `benchmarks`)."""

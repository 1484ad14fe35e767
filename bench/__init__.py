"""Benchmarks (not tests): comparisons against pipecat, results under bench/results/."""

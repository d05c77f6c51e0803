"""Benchmark scripts: each compares the project with its baseline in the same run and prints the ratio."""

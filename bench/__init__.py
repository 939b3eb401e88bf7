"""Benchmarks that print figures and keep them under var/bench/; never timed assertions in tests."""

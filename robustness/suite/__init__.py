"""Suites: specs (TOML in, JSON out), the grid of tasks they expand into, and the executors that run them."""

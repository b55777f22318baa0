"""Helpers shared by the tests: stand-in platform APIs, worker processes, servers, Hypothesis strategies."""

"""Experiments built on the fitted pipeline: the benchmark, its controls, few-shot and the oracle."""

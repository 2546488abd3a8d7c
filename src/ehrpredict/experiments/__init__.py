"""Experiments built on the fitted pipeline: the benchmark, its controls, few-shot and the oracle, with
what a run measures as typed results (:mod:`ehrpredict.experiments.results`) that ``report.json``, the
HTML page and the CLI all read."""

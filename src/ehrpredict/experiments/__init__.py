"""Benchmark experiments: what a run measures, as typed results (:mod:`ehrpredict.experiments.results`)
that ``report.json``, the HTML page and the CLI all read."""

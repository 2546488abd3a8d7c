"""The prediction service (``ehrpredict serve``, the ``[serve]`` extra): bundles scored over HTTP, CDS
Hooks for EHRs, a dashboard, API keys with scopes, an audit log and Prometheus metrics.

:mod:`~ehrpredict.serve.scoring` is the core and needs no web framework; the rest needs FastAPI.
"""

"""Explanations of individual predictions.

- :mod:`~ehrpredict.explain.contributions`: exact per-row contributions (LightGBM TreeSHAP, linear
  coefficient × value) that add up to the model's raw score; top factors; global importance.
- :mod:`~ehrpredict.explain.factors`: a feature as a readable sentence.
- :mod:`~ehrpredict.explain.card`: an explanation card per label row, with the timeline events behind
  its factors (:mod:`~ehrpredict.explain.excerpt`), as plain text or self-contained HTML.
- :mod:`~ehrpredict.explain.occlusion`: section and line occlusion for the text representation.
"""

from ehrpredict.explain.card import CardFactor, ExplanationCard, explain_rows
from ehrpredict.explain.contributions import (
    Contributions,
    Factor,
    TopFactors,
    contributions,
    global_importance,
    top_factors,
)
from ehrpredict.explain.factors import describe_factor

__all__ = [
    "CardFactor",
    "Contributions",
    "ExplanationCard",
    "Factor",
    "TopFactors",
    "contributions",
    "describe_factor",
    "explain_rows",
    "global_importance",
    "top_factors",
]

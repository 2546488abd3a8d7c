"""Events as featurizers see them: the single prediction-time cutoff (and, later, event sources)."""

"""Patient representations: the prediction-time cutoff and featurizers."""

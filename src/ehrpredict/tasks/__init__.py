"""Prediction tasks: declarative specs (YAML), the built-in library and the labeler."""

"""Explanations of individual predictions (section and line occlusion for the text representation)."""

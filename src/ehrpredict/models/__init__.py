"""Prediction heads (scikit-learn estimator contract)."""

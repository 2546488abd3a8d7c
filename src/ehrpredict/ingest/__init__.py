"""Ingestion: raw sources (MIMIC-IV, MEDS) → a MEDS 0.4 dataset with a data-quality report."""

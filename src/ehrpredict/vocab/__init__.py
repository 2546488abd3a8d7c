"""Code vocabularies: ICD formatting, descriptions and parents for ``metadata/codes.parquet``."""

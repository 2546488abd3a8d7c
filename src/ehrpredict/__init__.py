"""ehrpredict: raw electronic health records → validated clinical risk predictions.

Nothing runs at import; the public names are listed in ``__all__``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

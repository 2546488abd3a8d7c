"""Kept models: ``ehrpredict fit`` writes a bundle (a versioned directory of plain data: no pickles),
``ehrpredict predict`` scores a dataset with it, ``ehrpredict explain`` shows why."""

from ehrpredict.bundle.files import BundleError
from ehrpredict.bundle.model import Bundle, Scores, load_bundle, prediction_frame

__all__ = ["Bundle", "BundleError", "Scores", "load_bundle", "prediction_frame"]

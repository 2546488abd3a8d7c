"""Reports of benchmark runs: :mod:`~ehrpredict.reporting.svg` draws plots from numbers, and
:mod:`~ehrpredict.reporting.html` lays a typed report out as one self-contained page."""

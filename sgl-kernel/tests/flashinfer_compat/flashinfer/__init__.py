"""A stand-in ``flashinfer`` package whose ``sampling`` module is sgl_kernel.

Only for running FlashInfer's own sampling test suite against our ops (see
run_flashinfer_suite.py next to this package); never installed.
"""

from . import sampling  # noqa: F401

__version__ = "0.5.3+sgl_kernel"

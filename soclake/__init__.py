"""soclake: a data lakehouse for synthetic object-composition datasets.

The Python API is the real interface; the `soclake` command line is a thin layer over it.
"""
from soclake.errors import SoclakeError
from soclake.lake import Lake

__version__ = "0.1.0"
__all__ = ["Lake", "SoclakeError", "__version__"]

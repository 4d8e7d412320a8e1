"""The version of promptgrid (``promptgrid.__version__``; pyproject.toml's ``version``).

In a module of its own so that the package's modules (the files written record it) name it
without importing the package root, whose imports for the type checker reach every public
module: importing the root from one of those made an import cycle.
"""

__version__ = "0.1.0"

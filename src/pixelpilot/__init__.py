"""pixelpilot: GUI agents that see only pixels.

Importing the package is cheap: torch, transformers and playwright are imported only by the
modules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

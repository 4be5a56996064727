"""The version of torchann, in one place (the package root and the build read it from here)."""

__version__ = "0.1.0"

"""SIPAS backend: the satisfaction index of public administrative services."""

__version__ = "0.1.0"

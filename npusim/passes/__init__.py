"""Passes over the IR graph: precision now; sharding and placement as they come."""
from .quantize import quantize

__all__ = ["quantize"]

"""reconciler: make a Docker host's images match a declared desired state."""

__version__ = "0.1.0"

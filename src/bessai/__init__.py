"""open-bess-edge: edge gateway and energy-management system for battery storage."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bessai")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]

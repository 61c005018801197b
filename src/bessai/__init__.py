"""open-bess-edge: edge gateway and energy-management system for battery storage."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bessai")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]


def _register_envs() -> None:
    """Make `gymnasium.make("bessai/BESS-v0", ...)` work after `import bessai`, with no arguments
    too (the shipped CEN prices; `bessai.policy.envs`). The entry points are strings, so the
    plant model loads only when an environment is made; without gymnasium installed the package
    still imports."""
    try:
        from gymnasium.envs.registration import register, registry
    except ImportError:
        return
    if "bessai/BESS-v0" not in registry:
        register(
            id="bessai/BESS-v0",
            entry_point="bessai.policy.envs:make_env",
            vector_entry_point="bessai.policy.envs:make_vector_env",
        )


_register_envs()

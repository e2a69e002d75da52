"""The Asterisk sandbox: a real Asterisk in a Debian chroot for development and tests."""

from callcore.sandbox.asterisk import (
    AsteriskSandbox,
    SandboxError,
    SandboxStatus,
    default_cache_dir,
    default_config_dir,
)

__all__ = ["AsteriskSandbox", "SandboxError", "SandboxStatus", "default_cache_dir", "default_config_dir"]

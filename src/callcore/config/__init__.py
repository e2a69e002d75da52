"""Configuration: YAML files validated by pydantic, with errors that name the YAML path and line."""

from callcore.config.loader import ConfigError, ConfigIssue
from callcore.config.models import CallcoreConfig, load_config

__all__ = ["CallcoreConfig", "ConfigError", "ConfigIssue", "load_config"]

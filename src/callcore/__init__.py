"""callcore: a call-center server driving Asterisk over ARI."""

__version__ = "0.1.0"

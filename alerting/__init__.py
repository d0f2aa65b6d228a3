"""jc-alerting: an always-on security alerting engine for JumpCloud Directory Insights."""

__version__ = "0.1.0"

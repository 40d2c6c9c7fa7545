"""The built-in plugins, installed as ``autoresearch.plugins``."""

"""Brewnet's visual net editor (PySide6). Reads every fact from engine/'s public API."""

"""Shared method machinery that built-in and third-party method plugins combine."""

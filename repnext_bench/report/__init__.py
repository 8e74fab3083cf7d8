"""Presenting results: rich tables, JSON."""

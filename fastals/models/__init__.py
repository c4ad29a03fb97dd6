"""Recommender models: thin classes that validate, convert, call kernels and wrap results."""

"""Async store functions: each takes an ``AsyncSession`` (the layer below) as first argument."""

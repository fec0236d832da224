"""Lookup: which grid covers a point or an address, and who serves it."""

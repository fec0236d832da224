"""Delineation: units → cells → graph → partition → grids, runs, history and edits."""

"""The service's routers: features, maps and tiles, lookups and planner edits."""

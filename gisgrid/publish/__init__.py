"""Publishing: what goes to whom, vector tiles, the 红地图 style and the maps."""

"""Reading and storing: the workspace, its layers, imports, validation and households."""

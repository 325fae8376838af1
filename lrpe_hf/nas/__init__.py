"""Architecture search: search spaces, super-network slicing, evolutionary search, constraints."""

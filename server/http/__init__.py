"""HTTP handlers, one module per area; each exposes ``routes`` (a RouteTableDef)."""

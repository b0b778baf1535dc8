"""The servers' and channels' HTTP API: its routes, its schemas (what it hands out, what clients
send), the rule names follow, and what every route shares (the catalog as a dependency)."""

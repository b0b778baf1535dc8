"""The catalog: servers and channels in one database, SQLite or PostgreSQL (`store`), what
differs between the two (`dialects`), its schema (`migrations/`), and the PostgreSQL server the
kit can start itself (`pgserver`). It knows nothing of actors or the chat."""

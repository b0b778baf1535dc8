-- Servers and their channels: the catalog the whole app shares.
-- The integer rowid keeps creation order ("oldest first") without trusting clocks;
-- the UUID is what the API shows, so ids cannot be guessed or counted.
CREATE TABLE servers (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE channels (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Listing a server's channels is the common query: an index makes it a range scan.
CREATE INDEX channels_by_server ON channels (server_id, rowid);

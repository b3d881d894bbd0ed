-- The example app's own tables: what the seed's server actions work on.
CREATE TABLE projects (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id   TEXT NOT NULL CHECK (length(owner_id) <= 128),
    name       TEXT NOT NULL CHECK (length(name) <= 100),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE newsletter_subscribers (
    email         TEXT PRIMARY KEY CHECK (length(email) <= 255),
    subscribed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

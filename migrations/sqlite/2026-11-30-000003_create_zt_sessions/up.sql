-- zt-session's optional session registry (zt_session::REGISTRY_MIGRATIONS):
-- one row per session, for inactivity timeouts, an absolute lifetime,
-- "list my sessions", "sign out this device / all other devices", and client
-- changes that may mean a stolen session. Only the SHA-256 of the session id
-- is stored. user_id has no foreign key, so an app with its own users table
-- (its ids stored as their text) uses it too. Times are the fixed-width text
-- YYYY-MM-DDTHH:MM:SS.ffffffZ (27 characters), which sorts in time order.
CREATE TABLE zt_sessions (
    session_hash       BLOB NOT NULL PRIMARY KEY CHECK (length(session_hash) = 32),
    -- As zt_types::UserId bounds it.
    user_id            TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
    created_at         TEXT NOT NULL CHECK (length(created_at) = 27),
    -- Moved forward by checks at most once per touch interval.
    last_seen_at       TEXT NOT NULL CHECK (length(last_seen_at) = 27),
    -- The client at creation, and as last seen when it changed. IPs are the
    -- text of std's IpAddr; user agents are bounded as zt_types::UserAgent.
    created_ip         TEXT CHECK (length(created_ip) <= 45),
    created_user_agent TEXT CHECK (length(created_user_agent) <= 512),
    last_ip            TEXT CHECK (length(last_ip) <= 45),
    last_user_agent    TEXT CHECK (length(last_user_agent) <= 512),
    -- How many times a check saw the IP or user agent change, and when last.
    client_changes     INTEGER NOT NULL DEFAULT 0 CHECK (client_changes >= 0),
    client_changed_at  TEXT CHECK (length(client_changed_at) = 27),
    -- Signed out (this device, other devices, everywhere).
    revoked_at         TEXT CHECK (length(revoked_at) = 27)
) STRICT, WITHOUT ROWID;

-- "List my sessions" and "sign out my other devices".
CREATE INDEX zt_sessions_user_id_idx ON zt_sessions (user_id);
-- Pruning deletes by last activity.
CREATE INDEX zt_sessions_last_seen_at_idx ON zt_sessions (last_seen_at);

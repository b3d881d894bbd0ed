-- zt-session's optional session registry (zt_session::REGISTRY_MIGRATIONS):
-- one row per session, for inactivity timeouts, an absolute lifetime,
-- "list my sessions", "sign out this device / all other devices", and client
-- changes that may mean a stolen session. Only the SHA-256 of the session id
-- is stored. user_id has no foreign key, so an app with its own users table
-- (its ids stored as their text) uses it too.
CREATE TABLE zt_sessions (
    session_hash       BYTEA PRIMARY KEY CHECK (octet_length(session_hash) = 32),
    -- As zt_types::UserId bounds it.
    user_id            VARCHAR(128) NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    -- Moved forward by checks at most once per touch interval.
    last_seen_at       TIMESTAMPTZ NOT NULL,
    -- The client at creation, and as last seen when it changed. IPs are the
    -- text of std's IpAddr; user agents are bounded as zt_types::UserAgent.
    created_ip         VARCHAR(45),
    created_user_agent VARCHAR(512),
    last_ip            VARCHAR(45),
    last_user_agent    VARCHAR(512),
    -- How many times a check saw the IP or user agent change, and when last.
    client_changes     BIGINT NOT NULL DEFAULT 0 CHECK (client_changes >= 0),
    client_changed_at  TIMESTAMPTZ,
    -- Signed out (this device, other devices, everywhere).
    revoked_at         TIMESTAMPTZ
);

-- "List my sessions" and "sign out my other devices".
CREATE INDEX zt_sessions_user_id_idx ON zt_sessions (user_id);
-- Pruning deletes by last activity.
CREATE INDEX zt_sessions_last_seen_at_idx ON zt_sessions (last_seen_at);

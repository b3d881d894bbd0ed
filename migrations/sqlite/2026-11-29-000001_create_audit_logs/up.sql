-- The audit log: who did what to which resource, from where, and how it ended.
-- Rows are append-only and carry a keyed hash chain (see zt-audit's docs).
-- SQLite equivalents of the PostgreSQL types: TEXT for UUIDs, JSON and
-- addresses, BLOB for MACs, TEXT for times in the fixed-width form
-- YYYY-MM-DDTHH:MM:SS.ffffffZ, which sorts in time order.
CREATE TABLE audit_logs (
    id            INTEGER PRIMARY KEY CHECK (id > 0),
    event_id      TEXT NOT NULL UNIQUE CHECK (length(event_id) = 36),
    created_at    TEXT NOT NULL CHECK (length(created_at) = 27),
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'system', 'anonymous')),
    user_id       TEXT CHECK (length(user_id) <= 128),
    user_email    TEXT CHECK (length(user_email) <= 255),
    action        TEXT NOT NULL CHECK (length(action) <= 64),
    resource      TEXT NOT NULL CHECK (length(resource) <= 100),
    resource_id   TEXT CHECK (length(resource_id) <= 255),
    metadata      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    client_ip     TEXT,
    -- The client IP as 16 bytes (IPv4 mapped into IPv6), so that a CIDR
    -- filter is a BETWEEN range on an index: SQLite's stand-in for inet's <<=.
    client_ip_bin BLOB CHECK (client_ip_bin IS NULL OR length(client_ip_bin) = 16),
    peer_ip       TEXT,
    user_agent    TEXT CHECK (length(user_agent) <= 512),
    status        TEXT NOT NULL CHECK (status IN ('success', 'failed', 'denied')),
    error_code    TEXT CHECK (length(error_code) <= 64),
    request_id    TEXT CHECK (length(request_id) <= 128),
    chain_version INTEGER NOT NULL,
    prev_mac      BLOB NOT NULL CHECK (length(prev_mac) = 32),
    mac           BLOB NOT NULL CHECK (length(mac) = 32)
) STRICT;

CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at);
CREATE INDEX audit_logs_user_created_at_idx ON audit_logs (user_id, created_at);
CREATE INDEX audit_logs_resource_created_at_idx ON audit_logs (resource, resource_id, created_at);
CREATE INDEX audit_logs_action_created_at_idx ON audit_logs (action, created_at);
CREATE INDEX audit_logs_client_ip_bin_idx ON audit_logs (client_ip_bin);
CREATE INDEX audit_logs_request_id_idx ON audit_logs (request_id) WHERE request_id IS NOT NULL;

-- The head of the chain. Appends update this row first, which takes
-- SQLite's write lock and so serializes writers across processes.
CREATE TABLE audit_chain_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    mac BLOB NOT NULL CHECK (length(mac) = 32)
) STRICT;
INSERT INTO audit_chain_head (id, seq, mac) VALUES (1, 0, zeroblob(32));

-- Append-only: the database refuses changes.
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only: DELETE is not allowed');
END;

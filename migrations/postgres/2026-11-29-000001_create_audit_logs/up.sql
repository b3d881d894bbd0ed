-- The audit log: who did what to which resource, from where, and how it ended.
-- Rows are append-only and carry a keyed hash chain (see zt-audit's docs).
CREATE TABLE audit_logs (
    -- The chain position: 1, 2, 3, ... with no gaps. Assigned by the writer
    -- from audit_chain_head, never by a sequence, so a rolled-back write
    -- leaves no hole that would look like a deleted row.
    id            BIGINT PRIMARY KEY CHECK (id > 0),
    event_id      UUID NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    actor_kind    VARCHAR(16) NOT NULL CHECK (actor_kind IN ('user', 'system', 'anonymous')),
    user_id       VARCHAR(128),
    user_email    VARCHAR(255),
    action        VARCHAR(64) NOT NULL,
    resource      VARCHAR(100) NOT NULL,
    resource_id   VARCHAR(255),
    metadata      JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- The client IP resolved through trusted proxies, and the raw socket peer.
    client_ip     INET,
    peer_ip       INET,
    user_agent    VARCHAR(512),
    status        VARCHAR(16) NOT NULL CHECK (status IN ('success', 'failed', 'denied')),
    error_code    VARCHAR(64),
    request_id    VARCHAR(128),
    -- Tamper evidence: the encoding version, the previous row's MAC and this row's.
    chain_version SMALLINT NOT NULL,
    prev_mac      BYTEA NOT NULL CHECK (octet_length(prev_mac) = 32),
    mac           BYTEA NOT NULL CHECK (octet_length(mac) = 32)
);

-- The investigators' queries, one index each; `cargo xtask bench` measures
-- what each costs at ingest ("What each index costs" in BENCHMARKS.md).
-- Pages are in time order with a keyset on (created_at, id): a B-tree
-- returns the first page of a range at once, where a BRIN index would find
-- the range but leave every matching row to sort, so created_at stays a
-- B-tree; appended in time order, it costs little.
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at);
CREATE INDEX audit_logs_user_created_at_idx ON audit_logs (user_id, created_at);
CREATE INDEX audit_logs_resource_created_at_idx ON audit_logs (resource, resource_id, created_at);
CREATE INDEX audit_logs_action_created_at_idx ON audit_logs (action, created_at);
-- Btree on inet serves `client_ip <<= '10.0.0.0/8'` through the planner's network support.
CREATE INDEX audit_logs_client_ip_idx ON audit_logs (client_ip);
CREATE INDEX audit_logs_request_id_idx ON audit_logs (request_id) WHERE request_id IS NOT NULL;

-- The head of the chain: the last position and MAC. Appends lock this row,
-- which serializes writers across processes.
CREATE TABLE audit_chain_head (
    id  SMALLINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL CHECK (seq >= 0),
    mac BYTEA NOT NULL CHECK (octet_length(mac) = 32)
);
INSERT INTO audit_chain_head (id, seq, mac) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Append-only: the database refuses changes, whoever asks.
CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_logs_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();

CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();

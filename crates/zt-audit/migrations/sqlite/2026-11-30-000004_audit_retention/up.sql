-- Retention: `zt audit prune` deletes a chain's oldest rows, up to a
-- position that a verified archive covers. Each prune is recorded here with
-- the position, the MAC of the last row deleted, and a tag keyed with the
-- chain key, so that verification starts each chain after its newest prune,
-- and a prune record zt did not write is found.
CREATE TABLE audit_prunes (
    chain_id  INTEGER NOT NULL CHECK (chain_id > 0),
    upto_seq  INTEGER NOT NULL CHECK (upto_seq > 0),
    upto_mac  BLOB NOT NULL CHECK (length(upto_mac) = 32),
    pruned_at TEXT NOT NULL,
    tag       BLOB NOT NULL CHECK (length(tag) = 32),
    PRIMARY KEY (chain_id, upto_seq)
) STRICT;

-- Still append-only, with one way out: a DELETE of a row that a recorded
-- prune covers.
DROP TRIGGER audit_logs_no_delete;
CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
WHEN NOT EXISTS (
    SELECT 1 FROM audit_prunes p WHERE p.chain_id = OLD.chain_id AND p.upto_seq >= OLD.chain_seq
)
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only: DELETE is not allowed');
END;

-- Erasure: `zt audit erase` removes a person's data (email, metadata, client
-- and peer IP, user agent) from rows written with chain version 3, whose MAC
-- covers those fields through a keyed commitment. The commitment is kept
-- here, so the erased row still verifies; a row erased by anyone else does
-- not.
CREATE TABLE audit_erasures (
    chain_id   INTEGER NOT NULL CHECK (chain_id > 0),
    chain_seq  INTEGER NOT NULL CHECK (chain_seq > 0),
    commitment BLOB NOT NULL CHECK (length(commitment) = 32),
    erased_at  TEXT NOT NULL,
    PRIMARY KEY (chain_id, chain_seq)
) STRICT;

-- An UPDATE is let through only when it empties the personal fields of a
-- row whose erasure is recorded, and changes nothing else.
DROP TRIGGER audit_logs_no_update;
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
WHEN NOT (
    EXISTS (SELECT 1 FROM audit_erasures e WHERE e.chain_id = OLD.chain_id AND e.chain_seq = OLD.chain_seq)
    AND NEW.user_email IS NULL AND NEW.metadata = '{}' AND NEW.client_ip IS NULL
    AND NEW.client_ip_bin IS NULL AND NEW.peer_ip IS NULL AND NEW.user_agent IS NULL
    AND NEW.id IS OLD.id AND NEW.event_id IS OLD.event_id AND NEW.created_at IS OLD.created_at
    AND NEW.actor_kind IS OLD.actor_kind AND NEW.user_id IS OLD.user_id AND NEW.action IS OLD.action
    AND NEW.resource IS OLD.resource AND NEW.resource_id IS OLD.resource_id AND NEW.status IS OLD.status
    AND NEW.error_code IS OLD.error_code AND NEW.request_id IS OLD.request_id
    AND NEW.chain_version IS OLD.chain_version AND NEW.prev_mac IS OLD.prev_mac AND NEW.mac IS OLD.mac
    AND NEW.chain_id IS OLD.chain_id AND NEW.chain_seq IS OLD.chain_seq
)
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only: UPDATE is not allowed');
END;

-- Prune and erasure records are kept: nothing updates or deletes them.
CREATE TRIGGER audit_prunes_no_update BEFORE UPDATE ON audit_prunes
BEGIN
    SELECT RAISE(ABORT, 'audit_prunes is append-only: UPDATE is not allowed');
END;
CREATE TRIGGER audit_prunes_no_delete BEFORE DELETE ON audit_prunes
BEGIN
    SELECT RAISE(ABORT, 'audit_prunes is append-only: DELETE is not allowed');
END;
CREATE TRIGGER audit_erasures_no_update BEFORE UPDATE ON audit_erasures
BEGIN
    SELECT RAISE(ABORT, 'audit_erasures is append-only: UPDATE is not allowed');
END;
CREATE TRIGGER audit_erasures_no_delete BEFORE DELETE ON audit_erasures
BEGIN
    SELECT RAISE(ABORT, 'audit_erasures is append-only: DELETE is not allowed');
END;

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

-- Prune records are kept: nothing updates or deletes them.
CREATE TRIGGER audit_prunes_no_update BEFORE UPDATE ON audit_prunes
BEGIN
    SELECT RAISE(ABORT, 'audit_prunes is append-only: UPDATE is not allowed');
END;
CREATE TRIGGER audit_prunes_no_delete BEFORE DELETE ON audit_prunes
BEGIN
    SELECT RAISE(ABORT, 'audit_prunes is append-only: DELETE is not allowed');
END;

-- Several independent hash chains, each with its own head row; see zt-audit's
-- docs, "Chains". SQLite lets one writer in at a time, so zt writes one chain
-- there unless the app pins events to chains of its own (per tenant, say).

-- A row's place is its chain and its position in that chain: 1, 2, 3, ...
-- with no gaps in each chain. The rows written before chains existed form
-- chain 1, in id order.
ALTER TABLE audit_logs ADD COLUMN chain_id INTEGER NOT NULL DEFAULT 1 CHECK (chain_id > 0);
ALTER TABLE audit_logs ADD COLUMN chain_seq INTEGER NOT NULL DEFAULT 0 CHECK (chain_seq >= 0);
DROP TRIGGER audit_logs_no_update;
UPDATE audit_logs SET chain_seq = id;
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only: UPDATE is not allowed');
END;
-- Verification reads each chain in order; the tail of each chain is found here.
CREATE UNIQUE INDEX audit_logs_chain_position_idx ON audit_logs (chain_id, chain_seq);

-- One head per chain, created when a writer first uses the chain. SQLite
-- cannot drop a CHECK constraint, so the table is rebuilt.
CREATE TABLE audit_chain_head_new (
    id  INTEGER PRIMARY KEY CHECK (id > 0),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    mac BLOB NOT NULL CHECK (length(mac) = 32)
) STRICT;
INSERT INTO audit_chain_head_new (id, seq, mac) SELECT id, seq, mac FROM audit_chain_head;
DROP TABLE audit_chain_head;
ALTER TABLE audit_chain_head_new RENAME TO audit_chain_head;

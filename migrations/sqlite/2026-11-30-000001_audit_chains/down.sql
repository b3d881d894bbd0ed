-- Only a log that never used a chain other than 1 can go back.
CREATE TABLE audit_chain_head_old (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    mac BLOB NOT NULL CHECK (length(mac) = 32)
) STRICT;
INSERT INTO audit_chain_head_old (id, seq, mac) SELECT id, seq, mac FROM audit_chain_head WHERE id = 1;
DROP TABLE audit_chain_head;
ALTER TABLE audit_chain_head_old RENAME TO audit_chain_head;
DROP INDEX audit_logs_chain_position_idx;
ALTER TABLE audit_logs DROP COLUMN chain_seq;
ALTER TABLE audit_logs DROP COLUMN chain_id;

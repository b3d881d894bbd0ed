-- Only a log that never used a chain other than 1 can go back.
ALTER TABLE audit_chain_head DROP CONSTRAINT audit_chain_head_id_check;
DELETE FROM audit_chain_head WHERE id <> 1;
ALTER TABLE audit_chain_head ADD CONSTRAINT audit_chain_head_id_check CHECK (id = 1);
ALTER TABLE audit_logs ALTER COLUMN id DROP DEFAULT;
DROP SEQUENCE audit_logs_id_seq;
DROP INDEX audit_logs_chain_position_idx;
ALTER TABLE audit_logs DROP COLUMN chain_seq;
ALTER TABLE audit_logs DROP COLUMN chain_id;

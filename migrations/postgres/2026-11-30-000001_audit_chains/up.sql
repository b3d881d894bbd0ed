-- Several independent hash chains, so that concurrent transactions append to
-- the log without waiting for one another: each chain has its own head row,
-- and a writer takes any head that no other transaction holds. See zt-audit's
-- docs, "Chains".

-- A row's place is its chain and its position in that chain: 1, 2, 3, ...
-- with no gaps in each chain. The rows written before chains existed form
-- chain 1, in id order.
ALTER TABLE audit_logs ADD COLUMN chain_id SMALLINT NOT NULL DEFAULT 1 CHECK (chain_id > 0);
ALTER TABLE audit_logs ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_update_or_delete;
UPDATE audit_logs SET chain_seq = id;
ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_update_or_delete;
ALTER TABLE audit_logs ALTER COLUMN chain_seq SET NOT NULL;
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_chain_seq_check CHECK (chain_seq > 0);
ALTER TABLE audit_logs ALTER COLUMN chain_id DROP DEFAULT;
-- Verification reads each chain in order; the tail of each chain is found here.
CREATE UNIQUE INDEX audit_logs_chain_position_idx ON audit_logs (chain_id, chain_seq);

-- Row ids no longer carry the chain position; a sequence hands them out. A
-- rolled-back write leaves a hole in the ids, never in a chain.
CREATE SEQUENCE audit_logs_id_seq OWNED BY audit_logs.id;
SELECT setval('audit_logs_id_seq', COALESCE((SELECT max(id) FROM audit_logs), 0) + 1, false);
ALTER TABLE audit_logs ALTER COLUMN id SET DEFAULT nextval('audit_logs_id_seq');

-- One head per chain, created when a writer first uses the chain.
ALTER TABLE audit_chain_head DROP CONSTRAINT audit_chain_head_id_check;
ALTER TABLE audit_chain_head ADD CONSTRAINT audit_chain_head_id_check CHECK (id > 0);

-- Retention: `zt audit prune` deletes a chain's oldest rows, up to a
-- position that a verified archive covers. Each prune is recorded here with
-- the position, the MAC of the last row deleted, and a tag keyed with the
-- chain key, so that verification starts each chain after its newest prune,
-- and a prune record zt did not write is found.
CREATE TABLE audit_prunes (
    chain_id  SMALLINT NOT NULL CHECK (chain_id > 0),
    upto_seq  BIGINT NOT NULL CHECK (upto_seq > 0),
    upto_mac  BYTEA NOT NULL CHECK (octet_length(upto_mac) = 32),
    pruned_at TIMESTAMPTZ NOT NULL,
    tag       BYTEA NOT NULL CHECK (octet_length(tag) = 32),
    PRIMARY KEY (chain_id, upto_seq)
);

-- Still append-only, with one way out: a DELETE of a row that a recorded
-- prune covers. Only a role that may write audit_prunes (not the app's
-- runtime role) can record one, and verification checks its tag.
CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM audit_prunes p
        WHERE p.chain_id = OLD.chain_id AND p.upto_seq >= OLD.chain_seq
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Prune records are kept: nothing updates or deletes them.
CREATE FUNCTION audit_prunes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_prunes is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_prunes_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_prunes
    FOR EACH ROW EXECUTE FUNCTION audit_prunes_append_only();
CREATE TRIGGER audit_prunes_no_truncate
    BEFORE TRUNCATE ON audit_prunes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_prunes_append_only();

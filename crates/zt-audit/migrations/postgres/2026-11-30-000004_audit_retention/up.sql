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

-- Erasure: `zt audit erase` removes a person's data (email, metadata, client
-- and peer IP, user agent) from rows written with chain version 3, whose MAC
-- covers those fields through a keyed commitment. The commitment is kept
-- here, so the erased row still verifies; a row erased by anyone else does
-- not.
CREATE TABLE audit_erasures (
    chain_id   SMALLINT NOT NULL CHECK (chain_id > 0),
    chain_seq  BIGINT NOT NULL CHECK (chain_seq > 0),
    commitment BYTEA NOT NULL CHECK (octet_length(commitment) = 32),
    erased_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (chain_id, chain_seq)
);

-- Still append-only, with two ways out: a DELETE of a row that a recorded
-- prune covers, and an UPDATE that only empties the personal fields of a row
-- whose erasure is recorded. Only a role that may write audit_prunes or
-- audit_erasures (not the app's runtime role) can record either.
CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM audit_prunes p
        WHERE p.chain_id = OLD.chain_id AND p.upto_seq >= OLD.chain_seq
    ) THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE'
        AND EXISTS (
            SELECT 1 FROM audit_erasures e
            WHERE e.chain_id = OLD.chain_id AND e.chain_seq = OLD.chain_seq
        )
        AND NEW.user_email IS NULL AND NEW.metadata = '{}'::jsonb
        AND NEW.client_ip IS NULL AND NEW.peer_ip IS NULL AND NEW.user_agent IS NULL
        AND (NEW.id, NEW.event_id, NEW.created_at, NEW.actor_kind, NEW.user_id, NEW.action,
             NEW.resource, NEW.resource_id, NEW.status, NEW.error_code, NEW.request_id,
             NEW.chain_version, NEW.prev_mac, NEW.mac, NEW.chain_id, NEW.chain_seq)
            IS NOT DISTINCT FROM
            (OLD.id, OLD.event_id, OLD.created_at, OLD.actor_kind, OLD.user_id, OLD.action,
             OLD.resource, OLD.resource_id, OLD.status, OLD.error_code, OLD.request_id,
             OLD.chain_version, OLD.prev_mac, OLD.mac, OLD.chain_id, OLD.chain_seq)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Prune and erasure records are kept: nothing updates or deletes them.
CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_prunes_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_prunes
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
CREATE TRIGGER audit_prunes_no_truncate
    BEFORE TRUNCATE ON audit_prunes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
CREATE TRIGGER audit_erasures_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_erasures
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
CREATE TRIGGER audit_erasures_no_truncate
    BEFORE TRUNCATE ON audit_erasures
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();

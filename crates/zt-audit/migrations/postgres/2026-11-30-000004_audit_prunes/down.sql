-- Only a log that was never pruned can go back.
DROP TABLE audit_prunes CASCADE;
DROP FUNCTION audit_prunes_append_only();
CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

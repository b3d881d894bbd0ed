-- Only a log that was never pruned or erased can go back.
DROP TABLE audit_erasures;
DROP TABLE audit_prunes;
DROP FUNCTION audit_records_append_only();
CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

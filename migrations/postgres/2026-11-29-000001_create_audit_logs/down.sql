DROP TABLE audit_logs;
DROP TABLE audit_chain_head;
DROP FUNCTION audit_logs_append_only();

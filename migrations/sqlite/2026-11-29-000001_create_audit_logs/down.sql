DROP TABLE audit_logs;
DROP TABLE audit_chain_head;

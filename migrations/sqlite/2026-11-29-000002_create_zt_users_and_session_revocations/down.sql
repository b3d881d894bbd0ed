DROP TABLE zt_user_revocations;
DROP TABLE zt_session_revocations;
DROP TABLE zt_users;

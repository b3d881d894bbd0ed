DROP TABLE zt_sessions;

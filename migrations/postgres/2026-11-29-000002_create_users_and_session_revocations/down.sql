DROP TABLE session_revocations;
DROP TABLE users;

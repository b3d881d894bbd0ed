-- The reference user store that zt-session revalidates sessions against, and
-- the list of revoked sessions. Apps with their own users table implement
-- zt-session's UserDirectory instead and need not run this migration.
CREATE TABLE users (
    -- The application's user id, as zt_types::UserId bounds it.
    id              VARCHAR(128) PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:@|-]{1,128}$'),
    email           VARCHAR(255),
    -- As zt_types::Role bounds it.
    role            VARCHAR(32) NOT NULL DEFAULT 'user' CHECK (role ~ '^[a-z0-9_-]{1,32}$'),
    -- The security stamp: every role change, disable, enable, delete and
    -- revoke-all adds one, which ends every session issued before it.
    session_version BIGINT NOT NULL DEFAULT 0 CHECK (session_version >= 0),
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Deletion is a mark, so that audit rows keep pointing at a known id and
    -- the id is never reused. A missing row counts as deleted, too.
    deleted_at      TIMESTAMPTZ
);

-- One live account per address; deleted accounts keep theirs.
CREATE UNIQUE INDEX users_email_idx ON users (email) WHERE email IS NOT NULL AND deleted_at IS NULL;

-- Sessions revoked one by one. Only the SHA-256 of the session id is stored:
-- a leaked table must not hand out live sessions.
CREATE TABLE session_revocations (
    session_hash BYTEA PRIMARY KEY CHECK (octet_length(session_hash) = 32),
    user_id      VARCHAR(128) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    revoked_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX session_revocations_user_id_idx ON session_revocations (user_id);
-- Pruning deletes by age.
CREATE INDEX session_revocations_revoked_at_idx ON session_revocations (revoked_at);

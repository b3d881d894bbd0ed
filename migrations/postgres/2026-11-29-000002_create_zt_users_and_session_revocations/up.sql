-- The reference user store that zt-session revalidates sessions against, and
-- the list of revoked sessions, named zt_* so that they never collide with an
-- app's own users table. Apps with their own users table implement
-- zt-session's UserDirectory instead, and may still use the revocation tables.
CREATE TABLE zt_users (
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
CREATE UNIQUE INDEX zt_users_email_idx ON zt_users (email) WHERE email IS NOT NULL AND deleted_at IS NULL;

-- Sessions revoked one by one. Only the SHA-256 of the session id is stored:
-- a leaked table must not hand out live sessions. user_id has no foreign key,
-- so an app with its own users table (integer, UUID or text ids, stored as
-- their text) keeps its revocations here too.
CREATE TABLE zt_session_revocations (
    session_hash BYTEA PRIMARY KEY CHECK (octet_length(session_hash) = 32),
    user_id      VARCHAR(128) NOT NULL,
    revoked_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX zt_session_revocations_user_id_idx ON zt_session_revocations (user_id);
-- Pruning deletes by age.
CREATE INDEX zt_session_revocations_revoked_at_idx ON zt_session_revocations (revoked_at);

-- "Sign out everywhere" for users whose table has no session version: every
-- session of the user issued before revoked_before is revoked.
CREATE TABLE zt_user_revocations (
    user_id        VARCHAR(128) NOT NULL PRIMARY KEY,
    revoked_before TIMESTAMPTZ NOT NULL
);

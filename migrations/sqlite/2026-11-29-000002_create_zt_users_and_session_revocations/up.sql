-- The reference user store that zt-session revalidates sessions against, and
-- the list of revoked sessions, named zt_* so that they never collide with an
-- app's own users table. Apps with their own users table implement
-- zt-session's UserDirectory instead, and may still use the revocation tables.
-- SQLite equivalents of the PostgreSQL types: INTEGER 0/1 for booleans, BLOB
-- for hashes, TEXT for times in the fixed-width form
-- YYYY-MM-DDTHH:MM:SS.ffffffZ (27 characters), which sorts in time order.
-- Both tables are WITHOUT ROWID: a lookup by key reads one B-tree, not two.
CREATE TABLE zt_users (
    -- The application's user id, as zt_types::UserId bounds it.
    id              TEXT NOT NULL PRIMARY KEY
                    CHECK (length(id) BETWEEN 1 AND 128 AND id NOT GLOB '*[^A-Za-z0-9_.:@|-]*'),
    email           TEXT CHECK (length(email) <= 255),
    -- As zt_types::Role bounds it.
    role            TEXT NOT NULL DEFAULT 'user'
                    CHECK (length(role) BETWEEN 1 AND 32 AND role NOT GLOB '*[^a-z0-9_-]*'),
    -- The security stamp: every role change, disable, enable, delete and
    -- revoke-all adds one, which ends every session issued before it.
    session_version INTEGER NOT NULL DEFAULT 0 CHECK (session_version >= 0),
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
                    CHECK (length(created_at) = 27),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
                    CHECK (length(updated_at) = 27),
    -- Deletion is a mark, so that audit rows keep pointing at a known id and
    -- the id is never reused. A missing row counts as deleted, too.
    deleted_at      TEXT CHECK (length(deleted_at) = 27)
) STRICT, WITHOUT ROWID;

-- One live account per address; deleted accounts keep theirs.
CREATE UNIQUE INDEX zt_users_email_idx ON zt_users (email) WHERE email IS NOT NULL AND deleted_at IS NULL;

-- Sessions revoked one by one. Only the SHA-256 of the session id is stored:
-- a leaked table must not hand out live sessions. user_id has no foreign key,
-- so an app with its own users table (integer, UUID or text ids, stored as
-- their text) keeps its revocations here too.
CREATE TABLE zt_session_revocations (
    session_hash BLOB NOT NULL PRIMARY KEY CHECK (length(session_hash) = 32),
    user_id      TEXT NOT NULL,
    revoked_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
                 CHECK (length(revoked_at) = 27)
) STRICT, WITHOUT ROWID;

CREATE INDEX zt_session_revocations_user_id_idx ON zt_session_revocations (user_id);
-- Pruning deletes by age.
CREATE INDEX zt_session_revocations_revoked_at_idx ON zt_session_revocations (revoked_at);

-- "Sign out everywhere" for users whose table has no session version: every
-- session of the user issued before revoked_before is revoked.
CREATE TABLE zt_user_revocations (
    user_id        TEXT NOT NULL PRIMARY KEY,
    revoked_before TEXT CHECK (length(revoked_before) = 27) NOT NULL
) STRICT, WITHOUT ROWID;

-- Sessions of a user that began before valid_after are denied. Every change
-- that bumps session_version (role change, disable, enable, delete,
-- revoke-all) moves it to the change's time, so that a session whose claims
-- carry no session version (an identity provider's token) still ends at its
-- next check. The epoch means "no change yet".
ALTER TABLE zt_users ADD COLUMN valid_after TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01T00:00:00Z';

-- Users changed before this column existed: their last change is their
-- updated_at, which only creation and those changes write.
UPDATE zt_users SET valid_after = updated_at WHERE session_version > 0;

-- Sessions of a user that began before valid_after are denied. Every change
-- that bumps session_version (role change, disable, enable, delete,
-- revoke-all) moves it to the change's time, so that a session whose claims
-- carry no session version (an identity provider's token) still ends at its
-- next check. The epoch means "no change yet". Times are the fixed-width
-- text YYYY-MM-DDTHH:MM:SS.ffffffZ, as in the other columns.
ALTER TABLE zt_users ADD COLUMN valid_after TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000000Z'
    CHECK (length(valid_after) = 27);

-- Users changed before this column existed: their last change is their
-- updated_at, which only creation and those changes write.
UPDATE zt_users SET valid_after = updated_at WHERE session_version > 0;

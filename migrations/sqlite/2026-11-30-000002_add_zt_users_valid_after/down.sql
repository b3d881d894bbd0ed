ALTER TABLE zt_users DROP COLUMN valid_after;

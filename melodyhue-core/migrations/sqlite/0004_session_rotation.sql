-- A rotated refresh token's session is kept for the reuse interval (REFRESH_TOKEN_REUSE_INTERVAL):
-- within it, the token answers with the login's current pair instead of counting as reuse.
-- NULL: the live session of its login.
ALTER TABLE api_user_sessions ADD COLUMN rotated_at DATETIME;

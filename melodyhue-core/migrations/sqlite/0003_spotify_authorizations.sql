-- Spotify authorizations in progress (added): one row per `/spotify/auth/url`, named by the
-- SHA-256 hex of its OAuth `state`, with the user who asked and the `redirect_uri` the code
-- exchange must repeat. A row is deleted when its callback takes it, or once expired.
CREATE TABLE api_spotify_authorizations (
    state_hash   VARCHAR(64)   NOT NULL PRIMARY KEY,
    user_id      VARCHAR(32)   NOT NULL REFERENCES api_users (id),
    redirect_uri VARCHAR(2048) NOT NULL,
    created_at   DATETIME      NOT NULL,
    expires_at   DATETIME      NOT NULL
);
CREATE INDEX ix_api_spotify_authorizations_user_id ON api_spotify_authorizations (user_id);
CREATE INDEX ix_api_spotify_authorizations_expires_at ON api_spotify_authorizations (expires_at);

-- What this version needs beyond the earlier service's schema (see SCHEMA.md and the SQLite and
-- PostgreSQL migrations, which create the same final schema at once). Every change keeps every
-- row: columns are added (NULL or with a default), widened, or allowed to be NULL; times gain
-- millisecond precision. The tables keep utf8mb4_general_ci, so UNIQUE(email) ignores case.

ALTER TABLE api_users
    MODIFY role          VARCHAR(16)  NOT NULL DEFAULT 'user',
    MODIFY created_at    DATETIME(3)  NOT NULL,
    MODIFY updated_at    DATETIME(3)  NOT NULL,
    MODIFY last_login_at DATETIME(3)  NULL,
    ADD INDEX ix_api_users_created_at (created_at);

ALTER TABLE api_overlays
    MODIFY name       VARCHAR(120) NOT NULL DEFAULT 'Overlay',
    MODIFY color_hex  VARCHAR(7)   NOT NULL DEFAULT '#25d865',
    MODIFY template   VARCHAR(64)  NOT NULL DEFAULT 'classic',
    MODIFY style      VARCHAR(32)  NOT NULL DEFAULT 'light',
    MODIFY created_at DATETIME(3)  NOT NULL,
    MODIFY updated_at DATETIME(3)  NOT NULL,
    ADD INDEX ix_api_overlays_created_at (created_at);

-- Sessions are found by the SHA-256 of their refresh token; the legacy Fernet column stays for
-- the rows the earlier service wrote (they are not honoured and expire on their own).
ALTER TABLE api_user_sessions
    MODIFY refresh_token VARCHAR(2048) NULL,
    ADD COLUMN token_hash VARCHAR(64) NULL,
    ADD COLUMN family_id  VARCHAR(36) NULL,
    MODIFY created_at DATETIME(3) NOT NULL,
    MODIFY expires_at DATETIME(3) NOT NULL,
    ADD UNIQUE INDEX ix_api_user_sessions_token_hash (token_hash),
    ADD INDEX ix_api_user_sessions_family_id (family_id);

ALTER TABLE api_twofa
    ADD COLUMN last_used_step BIGINT NULL,
    MODIFY enabled_at  DATETIME(3) NOT NULL,
    MODIFY verified_at DATETIME(3) NULL;

ALTER TABLE api_spotify_secrets
    MODIFY updated_at DATETIME(3) NOT NULL;

ALTER TABLE api_spotify_tokens
    MODIFY updated_at DATETIME(3) NOT NULL;

ALTER TABLE api_password_resets
    MODIFY created_at DATETIME(3) NOT NULL,
    MODIFY expires_at DATETIME(3) NOT NULL,
    MODIFY used_at    DATETIME(3) NULL;

ALTER TABLE api_twofa_disable
    MODIFY created_at DATETIME(3) NOT NULL,
    MODIFY expires_at DATETIME(3) NOT NULL,
    MODIFY used_at    DATETIME(3) NULL;

ALTER TABLE api_user_settings
    MODIFY theme                 VARCHAR(32) NOT NULL DEFAULT 'light',
    MODIFY layout                VARCHAR(32) NOT NULL DEFAULT 'default',
    MODIFY avatar_mode           VARCHAR(32) NOT NULL DEFAULT 'gravatar',
    MODIFY avatar_color          VARCHAR(7)  NOT NULL DEFAULT '#25d865',
    MODIFY default_overlay_color VARCHAR(7)  NOT NULL DEFAULT '#25d865';

ALTER TABLE api_login_challenges
    ADD COLUMN failed_attempts INT NOT NULL DEFAULT 0,
    MODIFY created_at DATETIME(3) NOT NULL,
    MODIFY expires_at DATETIME(3) NOT NULL,
    MODIFY used_at    DATETIME(3) NULL;

-- A moderator's warnings and bans outlive their account, without a moderator.
ALTER TABLE api_user_warnings
    MODIFY moderator_id VARCHAR(32) NULL,
    MODIFY created_at   DATETIME(3) NOT NULL;

ALTER TABLE api_user_bans
    MODIFY moderator_id VARCHAR(32) NULL,
    MODIFY created_at   DATETIME(3) NOT NULL,
    MODIFY `until`      DATETIME(3) NULL,
    MODIFY revoked_at   DATETIME(3) NULL;

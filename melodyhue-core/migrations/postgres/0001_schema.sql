-- MelodyHue schema for PostgreSQL. Table and column names are those of the earlier service
-- (see SCHEMA.md); columns it did not have are marked "added".
-- Times are naive UTC with millisecond precision (the application truncates to milliseconds).

CREATE TABLE api_users (
    id            VARCHAR(32)  NOT NULL PRIMARY KEY,
    username      VARCHAR(80)  NOT NULL,
    email         VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    role          VARCHAR(16)  NOT NULL DEFAULT 'user',
    created_at    TIMESTAMP(3) NOT NULL,
    updated_at    TIMESTAMP(3) NOT NULL,
    last_login_at TIMESTAMP(3)
);
-- E-mails are unique case-insensitively.
CREATE UNIQUE INDEX ix_api_users_email ON api_users (lower(email));
CREATE INDEX ix_api_users_username ON api_users (username);
CREATE INDEX ix_api_users_created_at ON api_users (created_at);

CREATE TABLE api_overlays (
    id         VARCHAR(32)  NOT NULL PRIMARY KEY,
    owner_id   VARCHAR(32)  NOT NULL REFERENCES api_users (id),
    name       VARCHAR(120) NOT NULL DEFAULT 'Overlay',
    color_hex  VARCHAR(7)   NOT NULL DEFAULT '#25d865', -- legacy, unused
    template   VARCHAR(64)  NOT NULL DEFAULT 'classic',
    style      VARCHAR(32)  NOT NULL DEFAULT 'light',   -- legacy, unused
    created_at TIMESTAMP(3) NOT NULL,
    updated_at TIMESTAMP(3) NOT NULL
);
CREATE INDEX ix_api_overlays_owner_id ON api_overlays (owner_id);
CREATE INDEX ix_api_overlays_created_at ON api_overlays (created_at);

CREATE TABLE api_user_sessions (
    id            VARCHAR(36)   NOT NULL PRIMARY KEY,
    user_id       VARCHAR(32)   NOT NULL REFERENCES api_users (id),
    refresh_token VARCHAR(2048) UNIQUE,       -- legacy: Fernet-encrypted token; NULL here
    token_hash    VARCHAR(64)   UNIQUE,       -- added: SHA-256 hex of the refresh token
    family_id     VARCHAR(36),                -- added: the login this session descends from
    created_at    TIMESTAMP(3)  NOT NULL,
    expires_at    TIMESTAMP(3)  NOT NULL
);
CREATE INDEX ix_api_user_sessions_user_id ON api_user_sessions (user_id);
CREATE INDEX ix_api_user_sessions_family_id ON api_user_sessions (family_id);

CREATE TABLE api_twofa (
    user_id        VARCHAR(32)  NOT NULL PRIMARY KEY REFERENCES api_users (id),
    secret         VARCHAR(255),
    enabled_at     TIMESTAMP(3) NOT NULL,
    verified_at    TIMESTAMP(3),
    last_used_step BIGINT                     -- added: replay protection
);

CREATE TABLE api_spotify_secrets (
    user_id       VARCHAR(32)  NOT NULL PRIMARY KEY REFERENCES api_users (id),
    client_id     VARCHAR(255),
    client_secret VARCHAR(255),
    updated_at    TIMESTAMP(3) NOT NULL
);

CREATE TABLE api_spotify_tokens (
    user_id       VARCHAR(32)   NOT NULL PRIMARY KEY REFERENCES api_users (id),
    refresh_token VARCHAR(1024),
    updated_at    TIMESTAMP(3)  NOT NULL
);

CREATE TABLE api_password_resets (
    token      VARCHAR(64)  NOT NULL PRIMARY KEY,
    user_id    VARCHAR(32)  NOT NULL REFERENCES api_users (id),
    created_at TIMESTAMP(3) NOT NULL,
    expires_at TIMESTAMP(3) NOT NULL,
    used_at    TIMESTAMP(3)
);
CREATE INDEX ix_api_password_resets_user_id ON api_password_resets (user_id);

CREATE TABLE api_twofa_disable (
    token      VARCHAR(64)  NOT NULL PRIMARY KEY,
    user_id    VARCHAR(32)  NOT NULL REFERENCES api_users (id),
    created_at TIMESTAMP(3) NOT NULL,
    expires_at TIMESTAMP(3) NOT NULL,
    used_at    TIMESTAMP(3)
);
CREATE INDEX ix_api_twofa_disable_user_id ON api_twofa_disable (user_id);

CREATE TABLE api_user_settings (
    user_id               VARCHAR(32) NOT NULL PRIMARY KEY REFERENCES api_users (id),
    theme                 VARCHAR(32) NOT NULL DEFAULT 'light',
    layout                VARCHAR(32) NOT NULL DEFAULT 'default',
    avatar_mode           VARCHAR(32) NOT NULL DEFAULT 'gravatar',
    avatar_color          VARCHAR(7)  NOT NULL DEFAULT '#25d865',
    default_overlay_color VARCHAR(7)  NOT NULL DEFAULT '#25d865'
);

CREATE TABLE api_login_challenges (
    id              VARCHAR(36)  NOT NULL PRIMARY KEY,
    user_id         VARCHAR(32)  NOT NULL REFERENCES api_users (id),
    created_at      TIMESTAMP(3) NOT NULL,
    expires_at      TIMESTAMP(3) NOT NULL,
    used_at         TIMESTAMP(3),
    failed_attempts INTEGER      NOT NULL DEFAULT 0 -- added: the ticket dies after 5 wrong codes
);
CREATE INDEX ix_api_login_challenges_user_id ON api_login_challenges (user_id);

CREATE TABLE api_user_warnings (
    id           VARCHAR(36)  NOT NULL PRIMARY KEY,
    user_id      VARCHAR(32)  NOT NULL REFERENCES api_users (id),
    moderator_id VARCHAR(32)  REFERENCES api_users (id), -- NULL once the moderator's account is gone
    reason       TEXT         NOT NULL,
    created_at   TIMESTAMP(3) NOT NULL
);
CREATE INDEX ix_api_user_warnings_user_id ON api_user_warnings (user_id);
CREATE INDEX ix_api_user_warnings_moderator_id ON api_user_warnings (moderator_id);

CREATE TABLE api_user_bans (
    id           VARCHAR(36)  NOT NULL PRIMARY KEY,
    user_id      VARCHAR(32)  NOT NULL REFERENCES api_users (id),
    moderator_id VARCHAR(32)  REFERENCES api_users (id), -- NULL once the moderator's account is gone
    reason       TEXT         NOT NULL,
    created_at   TIMESTAMP(3) NOT NULL,
    until        TIMESTAMP(3),                           -- NULL = permanent
    revoked_at   TIMESTAMP(3)
);
CREATE INDEX ix_api_user_bans_user_id ON api_user_bans (user_id);
CREATE INDEX ix_api_user_bans_moderator_id ON api_user_bans (moderator_id);

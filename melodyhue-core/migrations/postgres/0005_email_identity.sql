-- E-mail identity: every comparison of addresses uses one canonical form (Unicode NFC plus full
-- case folding, see `model::canonical_email`), kept in its own column under a unique index and
-- compared byte for byte (collation "C"). The application fills the column of existing rows
-- right after this migration (`SqlStore::fill_canonical_emails`), since PostgreSQL's lower() is
-- not full case folding; a row whose form another, older account already holds keeps NULL
-- there (see DECISIONS.md).
ALTER TABLE api_users ADD COLUMN email_canonical VARCHAR(768) COLLATE "C";
DROP INDEX ix_api_users_email;
CREATE UNIQUE INDEX ix_api_users_email_canonical ON api_users (email_canonical);

-- The undo of an e-mail change, mailed to the replaced address (7 days, single use).
CREATE TABLE api_email_reverts (
    token      VARCHAR(64)  NOT NULL PRIMARY KEY, -- SHA-256 hex of the mailed token
    user_id    VARCHAR(32)  NOT NULL REFERENCES api_users (id),
    old_email  VARCHAR(255) NOT NULL,
    new_email  VARCHAR(255) NOT NULL,
    created_at TIMESTAMP(3) NOT NULL,
    expires_at TIMESTAMP(3) NOT NULL,
    used_at    TIMESTAMP(3)
);
CREATE INDEX ix_api_email_reverts_user_id ON api_email_reverts (user_id);

-- E-mail identity: every comparison of addresses uses one canonical form (Unicode NFC plus full
-- case folding, see `model::canonical_email`), kept in its own column under a unique index and
-- compared byte for byte (utf8mb4_bin). The legacy UNIQUE(email) goes: its utf8mb4_general_ci
-- collation also ignores accents, so `álice@exämple.com` and `alice@example.com` were one
-- address. The application fills the column of existing rows right after this migration
-- (`SqlStore::fill_canonical_emails`); a row whose form another, older account already holds
-- keeps NULL there (see DECISIONS.md). No row is changed or removed here.
ALTER TABLE api_users
    ADD COLUMN email_canonical VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    DROP INDEX ix_api_users_email,
    ADD UNIQUE INDEX ix_api_users_email_canonical (email_canonical);

-- The undo of an e-mail change, mailed to the replaced address (7 days, single use).
CREATE TABLE api_email_reverts (
    token      VARCHAR(64)  NOT NULL,
    user_id    VARCHAR(32)  NOT NULL,
    old_email  VARCHAR(255) NOT NULL,
    new_email  VARCHAR(255) NOT NULL,
    created_at DATETIME(3)  NOT NULL,
    expires_at DATETIME(3)  NOT NULL,
    used_at    DATETIME(3)  NULL,
    PRIMARY KEY (token),
    KEY ix_api_email_reverts_user_id (user_id),
    CONSTRAINT api_email_reverts_ibfk_1 FOREIGN KEY (user_id) REFERENCES api_users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

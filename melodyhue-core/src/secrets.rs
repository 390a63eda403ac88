//! Fernet encryption at rest with `ENCRYPTION_KEY`.

//! An SMTP server on loopback that keeps every message it receives.

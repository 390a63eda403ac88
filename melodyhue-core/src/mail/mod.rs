//! Outgoing mail: the `Mailer` trait, SMTP with lettre, and a logging mailer for development.

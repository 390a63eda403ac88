//! Password reset by e-mail, the one-time tokens it (and 2FA-disable) mails, the undo of an
//! e-mail change, and the mail budgets every route that sends mail takes from.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;

use super::{Error, Result};
use crate::App;
use crate::auth::token_hash;
use crate::mail::{BudgetKey, Refusal, templates};
use crate::model::{
    Email, EmailRevertOutcome, OneTimeToken, Password, TokenPurpose, canonical_email, random_bytes,
};

/// How long an e-mailed token works.
pub const ONE_TIME_TOKEN_LIFETIME: Duration = Duration::hours(1);

/// A fresh token to mail: 32 random bytes, base64url. Only its SHA-256 is stored.
pub(crate) fn new_mailed_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Account recovery: password reset by e-mail, reverting an e-mail change.
///
/// A view of an [`App`], from [`App::recovery`].
#[derive(Debug, Clone, Copy)]
pub struct Recovery<'a> {
    pub(crate) app: &'a App,
}

impl<'a> Recovery<'a> {
    /// Starts a password reset for `email`. The answer is the same whether or not the account
    /// exists, and so is its timing: the lookup and the mail happen after the response, in the
    /// background. Only with `EMAIL_DEBUG=true` is the work done inline, to return the raw token
    /// of an existing account. Takes from the mail budgets of `client_ip` and of the address
    /// (`429` once spent, for any address alike).
    pub async fn forgot_password(
        self,
        email: &Email,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<String>> {
        self.app.take_mail_budget(email, client_ip).await?;
        if self.app.config().email_debug {
            return self.send_reset_link(email).await;
        }
        let app = self.app.clone();
        let email = email.clone();
        tokio::spawn(async move {
            if let Err(err) = app.recovery().send_reset_link(&email).await {
                tracing::warn!(error = %err, "password reset request failed");
            }
        });
        Ok(None)
    }

    async fn send_reset_link(self, email: &str) -> Result<Option<String>> {
        let inner = self.app.inner();
        let Some(user) = inner.store.user_by_email(email).await? else {
            return Ok(None);
        };
        let token = self
            .app
            .issue_one_time_token(TokenPurpose::PasswordReset, &user.id)
            .await?;
        let link = inner.config.password_reset_link(&token);
        inner
            .outbox
            .send_in_background(templates::password_reset(&user.email, &link));
        Ok(Some(token))
    }

    /// Sets a new password with an e-mailed token: in one transaction the token is consumed, 2FA
    /// removed, every session of the user revoked and every other reset and 2FA-disable token
    /// of the user invalidated. The hash is admitted for `client_ip`.
    pub async fn reset_password(
        self,
        token: &str,
        new_password: &Password,
        client_ip: Option<IpAddr>,
    ) -> Result<()> {
        let inner = self.app.inner();
        let hash = inner.passwords.admit(client_ip)?.hash(new_password).await?;
        let user_id = inner
            .store
            .redeem_password_reset(&token_hash(token), &hash, self.app.now())
            .await?
            .ok_or(Error::Rejected("Invalid or expired token"))?;
        tracing::info!(%user_id, "password reset; 2FA removed and every session revoked");
        Ok(())
    }

    /// Undoes an e-mail change with the token mailed to the replaced address: the address is
    /// restored, every session and outstanding reset or 2FA-disable token of the user ends (so
    /// does every revert token of a later change), and both addresses are told. `400 Invalid or
    /// expired token`; `409` when another account took the old address meanwhile.
    pub async fn revert_email_change(self, token: &str) -> Result<()> {
        let inner = self.app.inner();
        match inner
            .store
            .redeem_email_revert(&token_hash(token), self.app.now())
            .await?
        {
            EmailRevertOutcome::Reverted {
                user_id,
                restored_email,
                replaced_email,
            } => {
                tracing::info!(%user_id, "e-mail change reverted; every session revoked");
                inner.outbox.send_in_background(templates::email_reverted(
                    &restored_email,
                    &restored_email,
                ));
                if canonical_email(&replaced_email) != canonical_email(&restored_email) {
                    inner.outbox.send_in_background(templates::email_reverted(
                        &replaced_email,
                        &restored_email,
                    ));
                }
                Ok(())
            }
            EmailRevertOutcome::Invalid => Err(Error::Rejected("Invalid or expired token")),
            EmailRevertOutcome::AddressTaken => Err(Error::Conflict(
                "Email already taken by another account; contact support",
            )),
        }
    }
}

impl App {
    /// Takes one mail from the budget of `client_ip` (when known and that budget is on), then from the budget of the
    /// recipient `address` (by its canonical form): `429` with `Retry-After` when either is
    /// spent. The answer does not depend on whether an account has the address.
    pub(crate) async fn take_mail_budget(
        &self,
        address: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<()> {
        let inner = self.inner();
        let now = self.now();
        let keys = client_ip
            .filter(|_| self.config().mail_limits.per_ip > 0)
            .map(|ip| (BudgetKey::Ip(ip), Refusal::Ip))
            .into_iter()
            .chain([(
                BudgetKey::Address(canonical_email(address)),
                Refusal::Address,
            )]);
        for (key, refusal) in keys {
            if let Err(retry_after) = inner.mail_budget.take(&key, now).await {
                inner.outbox.count_refusal(refusal);
                return Err(Error::MailThrottled { retry_after });
            }
        }
        Ok(())
    }

    /// Stores the hash of a fresh one-time token and returns the raw token (32 random bytes,
    /// base64url).
    pub(crate) async fn issue_one_time_token(
        &self,
        purpose: TokenPurpose,
        user_id: &str,
    ) -> Result<String> {
        let token = new_mailed_token();
        let now = self.now();
        self.inner()
            .store
            .insert_one_time_token(
                purpose,
                &OneTimeToken {
                    token_hash: token_hash(&token),
                    user_id: user_id.to_owned(),
                    created_at: now,
                    expires_at: now + ONE_TIME_TOKEN_LIFETIME,
                },
            )
            .await?;
        Ok(token)
    }
}

//! Password reset by e-mail, and the one-time tokens it (and 2FA-disable) mails.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;

use super::{Error, Result};
use crate::App;
use crate::auth::token_hash;
use crate::mail::templates;
use crate::model::{OneTimeToken, TokenPurpose, random_bytes};

/// How long an e-mailed token works.
pub const ONE_TIME_TOKEN_LIFETIME: Duration = Duration::hours(1);

impl App {
    /// Stores the hash of a fresh one-time token and returns the raw token (32 random bytes,
    /// base64url).
    pub(crate) async fn issue_one_time_token(
        &self,
        purpose: TokenPurpose,
        user_id: &str,
    ) -> Result<String> {
        let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
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

    /// Starts a password reset for `email`. The answer is the same whether or not the account
    /// exists, and so is its timing: the lookup and the mail happen after the response, in the
    /// background. Only with `EMAIL_DEBUG=true` is the work done inline, to return the raw token
    /// of an existing account.
    pub async fn forgot_password(&self, email: &str) -> Result<Option<String>> {
        if self.config().email_debug {
            return self.send_reset_link(email).await;
        }
        let app = self.clone();
        let email = email.to_owned();
        tokio::spawn(async move {
            if let Err(err) = app.send_reset_link(&email).await {
                tracing::warn!(error = %err, "password reset request failed");
            }
        });
        Ok(None)
    }

    async fn send_reset_link(&self, email: &str) -> Result<Option<String>> {
        let inner = self.inner();
        let Some(user) = inner.store.user_by_email(email).await? else {
            return Ok(None);
        };
        let token = self
            .issue_one_time_token(TokenPurpose::PasswordReset, &user.id)
            .await?;
        let link = inner.config.password_reset_link(&token);
        inner
            .outbox
            .send_in_background(templates::password_reset(&user.email, &link));
        Ok(Some(token))
    }

    /// Sets a new password with an e-mailed token: in one transaction the token is consumed, 2FA
    /// removed and every session of the user revoked. The hash is admitted for `client_ip`.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<()> {
        let inner = self.inner();
        let hash = inner.passwords.admit(client_ip)?.hash(new_password).await?;
        let user_id = inner
            .store
            .redeem_password_reset(&token_hash(token), &hash, self.now())
            .await?
            .ok_or(Error::Rejected("Invalid or expired token"))?;
        tracing::info!(%user_id, "password reset; 2FA removed and every session revoked");
        Ok(())
    }
}

//! TOTP two-factor authentication: setup, verification, the second login step, and disabling
//! it with a code or by e-mail.

use std::net::IpAddr;

use chrono::Duration;

use super::attempts::Checked;
use super::{Error, IssuedTokens, Result};
use crate::App;
use crate::auth::totp;
use crate::mail::templates;
use crate::model::{LoginChallenge, TokenPurpose, TwoFactor, User, new_id};

/// How long a login ticket lives.
pub const TICKET_LIFETIME: Duration = Duration::minutes(5);
/// Codes checked on one ticket at most: it is dead after 5 wrong codes. Each attempt is counted
/// (atomically, in the store) before its code is checked, so concurrent codes cannot pass it.
pub const MAX_TICKET_ATTEMPTS: u32 = 5;

const INVALID_TICKET: &str = "Invalid or expired ticket";
const INVALID_CODE: &str = "Invalid code";

/// A new pending TOTP secret, to show once.
#[derive(Debug, Clone)]
pub struct TwoFactorSetup {
    /// Base32 secret.
    pub secret: String,
    /// `otpauth://` URL for authenticator apps.
    pub otpauth_url: String,
}

/// The outcome of asking for a link by e-mail.
#[derive(Debug, Clone)]
pub struct EmailedToken {
    /// Whether a mail server is configured (the message itself is sent in the background).
    pub email_sent: bool,
    /// The raw token, only with `EMAIL_DEBUG=true`.
    pub debug_token: Option<String>,
}

/// Two-factor authentication (TOTP): setup, the login's second step, disabling.
///
/// A view of an [`App`], from [`App::two_factor`].
#[derive(Debug, Clone, Copy)]
pub struct SecondFactor<'a> {
    pub(crate) app: &'a App,
}

impl<'a> SecondFactor<'a> {
    /// The user's verified 2FA record, if 2FA is active.
    async fn active_two_factor(self, user_id: &str) -> Result<Option<TwoFactor>> {
        Ok(self
            .app
            .inner()
            .store
            .two_factor(user_id)
            .await?
            .filter(|tf| tf.verified_at.is_some()))
    }

    /// Whether `code` is valid for `record` now and its time step was not used before. Records
    /// the step, so the same code never works twice (checked and recorded atomically). Spaces
    /// and dashes in `code` are ignored (`123 456`, as authenticator apps show it).
    async fn accept_code(self, record: &TwoFactor, code: &str) -> Result<bool> {
        let inner = self.app.inner();
        let secret = inner
            .secrets
            .decrypt(&record.secret_encrypted)
            .map_err(Error::internal)?;
        let step = totp::verify(&secret, code, self.app.now()).map_err(Error::internal)?;
        match step {
            Some(step) => Ok(inner.store.claim_totp_step(&record.user_id, step).await?),
            None => Ok(false),
        }
    }

    /// Starts a login's second step: a ticket for `/auth/login/2fa`.
    pub(crate) async fn issue_login_ticket(self, user: &User) -> Result<String> {
        let now = self.app.now();
        let challenge = LoginChallenge {
            id: new_id(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now + TICKET_LIFETIME,
            used_at: None,
            attempts: 0,
        };
        self.app.inner().store.insert_challenge(&challenge).await?;
        Ok(challenge.id)
    }

    /// Finishes a two-step login with the ticket and a TOTP code.
    ///
    /// Before the code is checked, one failure is taken from the account's 2FA budget and the
    /// client's network (`429` when spent) and one attempt from the ticket (`400` once it had
    /// [`MAX_TICKET_ATTEMPTS`]), both atomically, so concurrent codes cannot pass either limit.
    pub async fn login_two_factor(
        self,
        ticket: &str,
        code: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<IssuedTokens> {
        let inner = self.app.inner();
        let now = self.app.now();
        let challenge = inner
            .store
            .challenge(ticket)
            .await?
            .filter(|c| {
                c.used_at.is_none() && c.expires_at > now && c.attempts < MAX_TICKET_ATTEMPTS
            })
            .ok_or(Error::Rejected(INVALID_TICKET))?;
        let budget = self.app.second_factor_budget(&challenge.user_id);
        let checked = self.app.attempt(vec![budget.clone()], client_ip, async {
            self.app.ensure_not_banned(&challenge.user_id).await?;
            let user = inner
                .store
                .user_by_id(&challenge.user_id)
                .await?
                .ok_or(Error::Rejected(INVALID_TICKET))?;
            // 2FA removed since the password step: the ticket no longer means anything.
            let record = self
                .active_two_factor(&user.id)
                .await?
                .ok_or(Error::Rejected(INVALID_TICKET))?;
            if !inner
                .store
                .take_challenge_attempt(ticket, MAX_TICKET_ATTEMPTS, now)
                .await?
            {
                return Err(Error::Rejected(INVALID_TICKET));
            }
            if !self.accept_code(&record, code).await? {
                return Ok(Checked::Wrong);
            }
            if !inner.store.consume_challenge(ticket, now).await? {
                return Err(Error::Rejected(INVALID_TICKET));
            }
            Ok(Checked::Right(user))
        });
        let user = checked
            .await?
            .ok_or(Error::Unauthorized("Invalid 2FA code"))?;
        self.app.forget_failures(&budget).await;
        self.app.open_session(user, None).await
    }

    /// Checks a code of the user's active or pending secret, spending the account's 2FA
    /// failure budget like the second login step does (a stolen access token must not allow
    /// unlimited guesses at `/auth/2fa/disable`).
    async fn check_code(
        self,
        record: &TwoFactor,
        code: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<bool> {
        let budget = self.app.second_factor_budget(&record.user_id);
        let checked = self.app.attempt(vec![budget.clone()], client_ip, async {
            Ok(match self.accept_code(record, code).await? {
                true => Checked::Right(()),
                false => Checked::Wrong,
            })
        });
        let accepted = checked.await?.is_some();
        if accepted {
            self.app.forget_failures(&budget).await;
        }
        Ok(accepted)
    }

    /// Makes a new pending secret; 2FA becomes active once a code of it is verified.
    pub async fn setup_two_factor(self, user: &User) -> Result<TwoFactorSetup> {
        if self.active_two_factor(&user.id).await?.is_some() {
            return Err(Error::Rejected("2FA already enabled"));
        }
        let inner = self.app.inner();
        let secret = totp::generate_secret();
        inner
            .store
            .save_pending_two_factor(&user.id, &inner.secrets.encrypt(&secret), self.app.now())
            .await?;
        Ok(TwoFactorSetup {
            otpauth_url: totp::otpauth_url(&user.email, &secret),
            secret,
        })
    }

    /// Activates the pending secret with a first code.
    pub async fn verify_two_factor(
        self,
        user: &User,
        code: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<()> {
        let record = self
            .app
            .inner()
            .store
            .two_factor(&user.id)
            .await?
            .ok_or(Error::Rejected("2FA not set up"))?;
        if record.verified_at.is_some() {
            return Err(Error::Rejected("2FA already enabled"));
        }
        if !self.check_code(&record, code, client_ip).await? {
            return Err(Error::Rejected(INVALID_CODE));
        }
        self.app
            .inner()
            .store
            .mark_two_factor_verified(&user.id, self.app.now())
            .await?;
        Ok(())
    }

    /// Turns 2FA off with a current code.
    pub async fn disable_two_factor(
        self,
        user: &User,
        code: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<()> {
        let record = self
            .active_two_factor(&user.id)
            .await?
            .ok_or(Error::Rejected("2FA not enabled"))?;
        if !self.check_code(&record, code, client_ip).await? {
            return Err(Error::Rejected(INVALID_CODE));
        }
        self.app.inner().store.delete_two_factor(&user.id).await?;
        Ok(())
    }

    /// Mails the user a link that turns 2FA off (for a lost authenticator). Takes from the
    /// mail budgets of the user's address and of `client_ip`.
    pub async fn request_two_factor_disable(
        self,
        user: &User,
        client_ip: Option<IpAddr>,
    ) -> Result<EmailedToken> {
        if self.active_two_factor(&user.id).await?.is_none() {
            return Err(Error::Rejected("2FA not enabled"));
        }
        self.app.take_mail_budget(&user.email, client_ip).await?;
        let inner = self.app.inner();
        let token = self
            .app
            .issue_one_time_token(TokenPurpose::TwoFactorDisable, &user.id)
            .await?;
        let link = inner.config.twofa_disable_link(&token);
        inner
            .outbox
            .send_in_background(templates::twofa_disable(&user.email, &link));
        Ok(EmailedToken {
            email_sent: inner.outbox.is_enabled(),
            debug_token: inner.config.email_debug.then_some(token),
        })
    }

    /// Turns 2FA off with the e-mailed token (single use, one hour).
    pub async fn confirm_two_factor_disable(self, token: &str) -> Result<()> {
        self.app
            .inner()
            .store
            .redeem_two_factor_disable(&crate::auth::token_hash(token), self.app.now())
            .await?
            .ok_or(Error::Rejected("Invalid or expired token"))
            .map(drop)
    }
}

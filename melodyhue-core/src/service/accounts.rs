//! Accounts and sessions: register, log in, refresh, log out, authenticate, change or delete.

use std::net::IpAddr;

use super::{Error, Result};
use crate::App;
use crate::auth::token_hash;
use crate::auth::tokens::TokenError;
use crate::mail::templates;
use crate::model::{EmailRevert, Role, Session, User, canonical_email, new_id};
use crate::store::StoreError;

/// What a new account is made of (already validated by the caller).
#[derive(Debug, Clone)]
pub struct Registration {
    /// 3..80 characters.
    pub username: String,
    /// A valid address.
    pub email: String,
    /// 8..128 characters.
    pub password: String,
}

/// A fresh access/refresh pair, and whose it is.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Long-lived JWT, one session row.
    pub refresh_token: String,
    /// The account.
    pub user: User,
}

/// The result of a password login.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// Logged in.
    Tokens(IssuedTokens),
    /// The password was right and the account has verified 2FA: send the code with this ticket.
    TwoFactorRequired {
        /// The login challenge id.
        ticket: String,
    },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Their account, as stored now (role included).
    pub user: User,
    /// The login family of the token used, when known.
    pub family: Option<String>,
}

/// An account as its owner sees it.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The account.
    pub user: User,
    /// Their fallback overlay color.
    pub default_overlay_color: String,
    /// Whether 2FA is verified and active.
    pub twofa_enabled: bool,
}

const INVALID_TOKEN: &str = "Invalid token";
const INVALID_CREDENTIALS: &str = "Invalid credentials";
const SESSION_REVOKED: &str = "session_revoked";
/// The `409` of a taken address. The real frontend shows "This email is already in use" only
/// for a detail with "email" and one of "taken", "exists", "déjà", "pris".
pub(crate) const EMAIL_TAKEN: &str = "Email already taken";

/// How long the link that undoes an e-mail change works.
pub const EMAIL_REVERT_LIFETIME: chrono::Duration = chrono::Duration::days(7);

impl App {
    /// Makes an account and logs it in.
    pub async fn register(&self, registration: Registration) -> Result<IssuedTokens> {
        let inner = self.inner();
        let password_hash = inner
            .passwords
            .hash(&registration.password)
            .await
            .map_err(Error::internal)?;
        let now = self.now();
        let user = User {
            id: new_id(),
            username: registration.username,
            email: registration.email,
            password_hash,
            role: Role::User,
            created_at: now,
            updated_at: now,
            last_login_at: Some(now),
        };
        match inner.store.insert_user(&user).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists("email")) => {
                return Err(Error::Conflict(EMAIL_TAKEN));
            }
            Err(err) => return Err(err.into()),
        }
        self.open_session(user, None).await
    }

    /// Checks a password login. `identifier` is an e-mail when it contains `@`, else a
    /// username (shared usernames: the account whose password matches). Too many failures for
    /// the identifier or the client IP are refused for a while, before any password is checked.
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<LoginOutcome> {
        let inner = self.inner();
        let now = self.now();
        inner
            .throttle
            .check(identifier, client_ip, now)
            .map_err(|retry_after| Error::Throttled { retry_after })?;
        let Some(user) = self.check_password(identifier, password).await? else {
            inner.throttle.record_failure(identifier, client_ip, now);
            return Err(Error::Unauthorized(INVALID_CREDENTIALS));
        };
        inner.throttle.clear(identifier);
        self.ensure_not_banned(&user.id).await?;
        let has_two_factor = inner
            .store
            .two_factor(&user.id)
            .await?
            .is_some_and(|tf| tf.verified_at.is_some());
        if has_two_factor {
            let ticket = self.issue_login_ticket(&user).await?;
            return Ok(LoginOutcome::TwoFactorRequired { ticket });
        }
        self.open_session(user, None)
            .await
            .map(LoginOutcome::Tokens)
    }

    /// The account `identifier` names whose password is `password`. Unknown identifiers cost
    /// the same time as known ones.
    async fn check_password(&self, identifier: &str, password: &str) -> Result<Option<User>> {
        let inner = self.inner();
        let candidates = if identifier.contains('@') {
            inner
                .store
                .user_by_email(identifier)
                .await?
                .into_iter()
                .collect()
        } else {
            inner.store.users_by_username(identifier).await?
        };
        if candidates.is_empty() {
            inner
                .passwords
                .verify_decoy(password)
                .await
                .map_err(Error::internal)?;
            return Ok(None);
        }
        for user in candidates {
            if inner
                .passwords
                .verify(password, &user.password_hash)
                .await
                .map_err(Error::internal)?
            {
                return Ok(Some(user));
            }
        }
        Ok(None)
    }

    /// Rotates a refresh token: its session is replaced by a new one of the same family. A token
    /// that was already rotated revokes its whole family.
    pub async fn refresh(&self, refresh_token: Option<&str>) -> Result<IssuedTokens> {
        let inner = self.inner();
        let token = refresh_token
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthorized("missing_refresh_token"))?;
        let now = self.now();
        let claims = inner.tokens.decode_refresh(token, now).map_err(|err| {
            Error::Unauthorized(match err {
                TokenError::Invalid => "invalid_token",
                TokenError::Expired => "token_expired",
                TokenError::WrongType => "not_refresh_token",
            })
        })?;
        // Tokens of the earlier service carry no family and their sessions are not looked up.
        let family = claims.family.ok_or(Error::Unauthorized(SESSION_REVOKED))?;
        let Some(user) = inner.store.user_by_id(&claims.sub).await? else {
            inner.store.delete_session_family(&family).await?;
            return Err(Error::Unauthorized(SESSION_REVOKED));
        };
        self.ensure_not_banned(&user.id).await?;
        let (tokens, session) = self.issue_tokens(user, &family)?;
        if !inner
            .store
            .rotate_session(&token_hash(token), &session)
            .await?
        {
            let revoked = inner.store.delete_session_family(&family).await?;
            tracing::warn!(user_id = %claims.sub, revoked, "refresh token reused; session family revoked");
            return Err(Error::Unauthorized(SESSION_REVOKED));
        }
        Ok(tokens)
    }

    /// Deletes the session of a refresh token, expired or not. Never fails: a logout that
    /// cannot reach the database is logged and still clears the client's cookies.
    pub async fn logout(&self, refresh_token: Option<&str>) {
        let Some(token) = refresh_token.filter(|t| !t.is_empty()) else {
            return;
        };
        if let Err(err) = self.inner().store.delete_session(&token_hash(token)).await {
            tracing::warn!(error = %err, "logout could not delete the session");
        }
    }

    /// The caller of an access token: valid signature, not expired, an existing, unbanned user.
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal> {
        let inner = self.inner();
        let claims = inner
            .tokens
            .decode_access(access_token, self.now())
            .map_err(|_| Error::Unauthorized(INVALID_TOKEN))?;
        let user = inner
            .store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(Error::Unauthorized(INVALID_TOKEN))?;
        self.ensure_not_banned(&user.id).await?;
        Ok(Principal {
            user,
            family: claims.family,
        })
    }

    /// The caller's account with their fallback color and 2FA state.
    pub async fn profile(&self, user: User) -> Result<Profile> {
        let store = &self.inner().store;
        let default_overlay_color = store
            .settings(&user.id)
            .await?
            .unwrap_or_default()
            .default_overlay_color;
        let twofa_enabled = store
            .two_factor(&user.id)
            .await?
            .is_some_and(|tf| tf.verified_at.is_some());
        Ok(Profile {
            user,
            default_overlay_color,
            twofa_enabled,
        })
    }

    /// Renames the caller. Refused when another account already has the name.
    pub async fn change_username(&self, user: &User, username: &str) -> Result<User> {
        let store = &self.inner().store;
        let taken = store
            .users_by_username(username)
            .await?
            .iter()
            .any(|other| other.id != user.id);
        if taken {
            return Err(Error::Conflict("Username already taken"));
        }
        self.update_profile(&user.id, Some(username), None).await
    }

    /// Changes the caller's e-mail. A new address (by its canonical form) mails the old one a
    /// notice with a link that undoes the change ([`App::revert_email_change`], 7 days, single
    /// use); it takes from the mail budgets of the old address and of `client_ip`. Another
    /// spelling of the same address is saved without a notice.
    pub async fn change_email(
        &self,
        user: &User,
        email: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<User> {
        self.change_email_of(user, email, None, client_ip).await
    }

    /// [`App::change_email`] for any account, with an optional new username in the same
    /// transaction (staff edits).
    pub(crate) async fn change_email_of(
        &self,
        target: &User,
        email: &str,
        username: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Result<User> {
        if canonical_email(email) == canonical_email(&target.email) {
            return self.update_profile(&target.id, username, Some(email)).await;
        }
        self.take_mail_budget(&target.email, client_ip).await?;
        let inner = self.inner();
        let token = crate::service::recovery::new_mailed_token();
        let now = self.now();
        let revert = EmailRevert {
            token_hash: token_hash(&token),
            user_id: target.id.clone(),
            old_email: target.email.clone(),
            new_email: email.to_owned(),
            created_at: now,
            expires_at: now + EMAIL_REVERT_LIFETIME,
        };
        match inner.store.change_email(&revert, username, now).await {
            Ok(true) => {}
            Ok(false) => return Err(Error::NotFound("User not found")),
            Err(StoreError::AlreadyExists("email")) => return Err(Error::Conflict(EMAIL_TAKEN)),
            Err(err) => return Err(err.into()),
        }
        tracing::info!(user_id = %target.id, "e-mail changed; the old address was sent a revert link");
        let link = inner.config.email_revert_link(&token);
        inner
            .outbox
            .send_in_background(templates::email_changed(&target.email, email, &link));
        inner
            .store
            .user_by_id(&target.id)
            .await?
            .ok_or(Error::NotFound("User not found"))
    }

    /// Changes username and/or e-mail of any account (moderators use this too).
    pub(crate) async fn update_profile(
        &self,
        user_id: &str,
        username: Option<&str>,
        email: Option<&str>,
    ) -> Result<User> {
        let store = &self.inner().store;
        match store
            .update_profile(user_id, username, email, self.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(Error::NotFound("User not found")),
            Err(StoreError::AlreadyExists("email")) => {
                return Err(Error::Conflict(EMAIL_TAKEN));
            }
            Err(err) => return Err(err.into()),
        }
        store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound("User not found"))
    }

    /// Changes the caller's password after checking the old one; their other sessions end and
    /// every outstanding password-reset and 2FA-disable link stops working.
    pub async fn change_password(
        &self,
        principal: &Principal,
        old_password: &str,
        new_password: &str,
    ) -> Result<()> {
        let inner = self.inner();
        let user = &principal.user;
        if !inner
            .passwords
            .verify(old_password, &user.password_hash)
            .await
            .map_err(Error::internal)?
        {
            return Err(Error::Rejected("Invalid old password"));
        }
        let hash = inner
            .passwords
            .hash(new_password)
            .await
            .map_err(Error::internal)?;
        let revoked = inner
            .store
            .update_password(&user.id, &hash, principal.family.as_deref(), self.now())
            .await?;
        tracing::info!(user_id = %user.id, revoked, "password changed; other sessions revoked");
        Ok(())
    }

    /// Deletes the caller's account and everything that is theirs.
    pub async fn delete_account(&self, user: &User) -> Result<()> {
        self.inner().store.delete_user(&user.id).await?;
        self.inner().hot_reads.user_deleted(&user.id);
        Ok(())
    }

    /// Refuses banned accounts.
    pub(crate) async fn ensure_not_banned(&self, user_id: &str) -> Result<()> {
        match self.inner().store.active_ban(user_id, self.now()).await? {
            Some(_) => Err(Error::Banned),
            None => Ok(()),
        }
    }

    /// Starts a new login family (or continues `family`) for `user` and records the login.
    pub(crate) async fn open_session(
        &self,
        user: User,
        family: Option<String>,
    ) -> Result<IssuedTokens> {
        let store = &self.inner().store;
        let family = family.unwrap_or_else(new_id);
        let (mut tokens, session) = self.issue_tokens(user, &family)?;
        store.insert_session(&session).await?;
        let now = session.created_at;
        store.record_login(&tokens.user.id, now).await?;
        tokens.user.last_login_at = Some(now);
        Ok(tokens)
    }

    fn issue_tokens(&self, user: User, family: &str) -> Result<(IssuedTokens, Session)> {
        let tokens = &self.inner().tokens;
        let now = self.now();
        let refresh = tokens
            .refresh_token(&user.id, family, now)
            .map_err(Error::internal)?;
        let access_token = tokens
            .access_token(&user, family, now)
            .map_err(Error::internal)?;
        let session = Session {
            id: new_id(),
            user_id: user.id.clone(),
            token_hash: token_hash(&refresh.token),
            family_id: family.to_owned(),
            created_at: now,
            expires_at: refresh.expires_at,
        };
        Ok((
            IssuedTokens {
                access_token,
                refresh_token: refresh.token,
                user,
            },
            session,
        ))
    }
}

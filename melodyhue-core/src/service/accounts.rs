//! Accounts and sessions: register, log in, refresh, log out, authenticate, change or delete.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::attempts::Checked;
use super::{Error, Result};
use crate::App;
use crate::auth::password::{HashingSlot, same_computation_for};
use crate::auth::token_hash;
use crate::auth::tokens::TokenError;
use crate::cluster::changes::Change;
use crate::mail::templates;
use crate::model::{
    Email, EmailRevert, LoginIdentifier, LoginPassword, Password, Role, User, Username,
    canonical_email, new_id,
};
use crate::store::StoreError;

/// What a new account is made of; each field checked its rule when it was made.
///
/// ```
/// use melodyhue_core::model::{Email, InvalidValue, Password, Username};
/// use melodyhue_core::service::Registration;
///
/// assert_eq!(Username::parse("ab"), Err(InvalidValue::TooShort { min_chars: 3 }));
/// let registration = Registration {
///     username: Username::parse("ada")?,
///     email: Email::parse("ada@example.com")?,
///     password: Password::parse("correct-horse-42")?,
/// };
/// # Ok::<(), InvalidValue>(())
/// ```
///
/// A plain string is not a [`Username`], so no caller can skip its check:
///
/// ```compile_fail,E0308
/// # use melodyhue_core::model::{Email, Password};
/// # use melodyhue_core::service::Registration;
/// let registration = Registration {
///     username: String::from("ab"),
///     email: Email::parse("ada@example.com").unwrap(),
///     password: Password::parse("correct-horse-42").unwrap(),
/// };
/// ```
#[derive(Debug, Clone)]
pub struct Registration {
    /// The display name.
    pub username: Username,
    /// The address, unique by its canonical form.
    pub email: Email,
    /// The password, of which only an Argon2 hash is kept.
    pub password: Password,
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

/// The PHC string a new hash of `user_id`'s password is made like: the oldest hash among the
/// accounts of its username, when another account shares the username, so that all of them
/// keep one salt and one computation checks a password against every one of them (a failed
/// login by a shared username costs one hash, whatever the number of accounts). `None`: a
/// fresh salt.
fn shared_salt_template<'a>(namesakes: &'a [User], user_id: Option<&str>) -> Option<&'a str> {
    let shared = namesakes.iter().any(|u| Some(u.id.as_str()) != user_id);
    namesakes
        .first()
        .filter(|_| shared)
        .map(|u| u.password_hash.as_str())
}

/// Accounts: registration, login and sessions, the profile, password and e-mail changes, deletion.
///
/// A view of an [`App`], from [`App::accounts`].
#[derive(Debug, Clone, Copy)]
pub struct Accounts<'a> {
    pub(crate) app: &'a App,
}

impl<'a> Accounts<'a> {
    /// Makes an account and logs it in. Its password hash is admitted for `client_ip`.
    pub async fn register(
        self,
        registration: Registration,
        client_ip: Option<IpAddr>,
    ) -> Result<IssuedTokens> {
        let inner = self.app.inner();
        let slot = inner.passwords.admit(client_ip)?;
        let namesakes = inner
            .store
            .users_by_username(&registration.username)
            .await?;
        let password_hash = slot
            .hash_like(
                registration.password.as_str(),
                shared_salt_template(&namesakes, None),
            )
            .await?;
        drop(slot);
        let now = self.app.now();
        let user = User {
            id: new_id(),
            username: registration.username.into_string(),
            email: registration.email.into_string(),
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
        self.app.open_session(user, None).await
    }

    /// Checks a password login. `identifier` is an e-mail when it contains `@`, else a
    /// username (shared usernames: the account whose password matches).
    ///
    /// One failure is taken from the budgets of every account the identifier names (or of the
    /// identifier itself when it names none) and of the client's network before the password
    /// is checked, so concurrent guesses cannot pass the limit, and a guess by username and
    /// one by e-mail spend the same account's budget. A throttled login (`429`) costs no hash.
    pub async fn login(
        self,
        identifier: &LoginIdentifier,
        password: &LoginPassword,
        client_ip: Option<IpAddr>,
    ) -> Result<LoginOutcome> {
        // Blanks around an address or a name are typing slips, not part of it.
        let identifier = identifier.trim();
        let inner = self.app.inner();
        // Admission first: a request refused for load costs no lookup.
        let slot = inner.passwords.admit(client_ip)?;
        let candidates = self.login_candidates(identifier).await?;
        let keys = if candidates.is_empty() {
            vec![self.app.identifier_budget(identifier)]
        } else {
            candidates
                .iter()
                .map(|user| self.app.account_budget(&user.id))
                .collect()
        };
        let checked = self.app.attempt(keys, client_ip, async {
            Ok(
                match self.check_password(&slot, password, &candidates).await? {
                    Some(user) => Checked::Right(user),
                    None => Checked::Wrong,
                },
            )
        });
        let user = checked
            .await?
            .ok_or(Error::Unauthorized(INVALID_CREDENTIALS))?;
        self.app
            .forget_failures(&self.app.account_budget(&user.id))
            .await;
        self.app.ensure_not_banned(&user.id).await?;
        let has_two_factor = inner
            .store
            .two_factor(&user.id)
            .await?
            .is_some_and(|tf| tf.verified_at.is_some());
        if has_two_factor {
            let ticket = self.app.two_factor().issue_login_ticket(&user).await?;
            return Ok(LoginOutcome::TwoFactorRequired { ticket });
        }
        self.app
            .open_session(user, None)
            .await
            .map(LoginOutcome::Tokens)
    }

    /// The accounts a login identifier names: the account of an e-mail (it contains `@`), or
    /// every account of a username, oldest first.
    async fn login_candidates(self, identifier: &str) -> Result<Vec<User>> {
        let store = &self.app.inner().store;
        Ok(if identifier.contains('@') {
            store.user_by_email(identifier).await?.into_iter().collect()
        } else {
            store.users_by_username(identifier).await?
        })
    }

    /// The one of `candidates` whose password is `password`. Candidates sharing a salt cost
    /// one computation together; no candidate costs a decoy computation, so that unknown and
    /// known identifiers take the same time.
    async fn check_password(
        self,
        slot: &HashingSlot<'_>,
        password: &str,
        candidates: &[User],
    ) -> Result<Option<User>> {
        let hashes: Vec<&str> = candidates
            .iter()
            .map(|u| u.password_hash.as_str())
            .collect();
        let Some(found) = slot.verify_any(password, &hashes).await? else {
            return Ok(None);
        };
        let Some(user) = candidates.get(found) else {
            return Ok(None);
        };
        self.share_username_salt(slot, user, password).await;
        Ok(Some(user.clone()))
    }

    /// Re-hashes a password the user just proved with the salt its username's accounts share
    /// (see [`shared_salt_template`]), when it has another: accounts of the earlier service, or
    /// renamed ones, join their username's salt at their next login. Best effort: a failure is
    /// logged and the login goes on.
    async fn share_username_salt(self, slot: &HashingSlot<'_>, user: &User, password: &str) {
        let store = &self.app.inner().store;
        let namesakes = match store.users_by_username(&user.username).await {
            Ok(namesakes) => namesakes,
            Err(err) => {
                tracing::warn!(error = %err, "cannot look up the accounts of a username");
                return;
            }
        };
        let Some(template) = shared_salt_template(&namesakes, Some(&user.id)) else {
            return;
        };
        if same_computation_for(template, &user.password_hash) {
            return;
        }
        let rehashed = match slot.hash_like(password, Some(template)).await {
            Ok(hash) => store
                .replace_password_hash(&user.id, &user.password_hash, &hash)
                .await
                .map_err(Error::from),
            Err(err) => Err(err.into()),
        };
        match rehashed {
            Ok(_) => {
                tracing::debug!(user_id = %user.id, "password re-hashed with its username's salt")
            }
            Err(err) => {
                tracing::warn!(user_id = %user.id, error = %err, "cannot re-hash a password")
            }
        }
    }

    /// Rotates a refresh token: its session is marked rotated and replaced by a successor of
    /// the same family.
    ///
    /// A token that is no longer live was either rotated within the last
    /// `REFRESH_TOKEN_REUSE_INTERVAL` (two tabs refreshing at once, a retry): it answers the
    /// pair that is now current for its login, signed again from the live session, so every
    /// caller ends up holding the same refresh token; or it is reuse: its whole family is
    /// revoked. Concurrent rotations of one token never leave two live sessions of a login.
    pub async fn refresh(self, refresh_token: Option<&str>) -> Result<IssuedTokens> {
        let inner = self.app.inner();
        let token = refresh_token
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthorized("missing_refresh_token"))?;
        let now = self.app.now();
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
        self.app.ensure_not_banned(&user.id).await?;
        let interval = chrono::Duration::from_std(inner.config.refresh_token_reuse_interval)
            .unwrap_or(chrono::Duration::MAX);
        let (successor, successor_token) = inner
            .tokens
            .new_session(&user.id, &family, now)
            .map_err(Error::internal)?;
        let presented = token_hash(token);
        let forget_before = now
            .checked_sub_signed(interval)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        if inner
            .store
            .rotate_session(&presented, &successor, now, forget_before)
            .await?
        {
            return self.app.token_pair(user, &family, successor_token);
        }
        let rotated_at = inner
            .store
            .session_by_token_hash(&presented)
            .await?
            .filter(|session| session.family_id == family && session.user_id == user.id)
            .and_then(|session| session.rotated_at);
        let within_interval = rotated_at
            .and_then(|at| at.checked_add_signed(interval))
            .is_some_and(|until| now < until);
        if within_interval {
            return self.current_pair(user, &family).await;
        }
        let revoked = inner.store.delete_session_family(&family).await?;
        tracing::warn!(user_id = %claims.sub, revoked, "refresh token reused; session family revoked");
        Err(Error::Unauthorized(SESSION_REVOKED))
    }

    /// The pair that is current for a login: the live session's refresh token, signed again
    /// from its row (the server keeps no token), and a fresh access token.
    async fn current_pair(self, user: User, family: &str) -> Result<IssuedTokens> {
        let inner = self.app.inner();
        let Some(live) = inner.store.live_session(family).await? else {
            // The login ended meanwhile (logout, ban, password change): its rotated sessions go too.
            inner.store.delete_session_family(family).await?;
            return Err(Error::Unauthorized(SESSION_REVOKED));
        };
        let token = inner
            .tokens
            .refresh_token_of(&live)
            .map_err(Error::internal)?;
        if token_hash(&token) != live.token_hash || live.user_id != user.id {
            // A session this server cannot sign again (made by another version or key).
            tracing::warn!(user_id = %user.id, "the current session of a login cannot be handed back");
            return Err(Error::Unauthorized(SESSION_REVOKED));
        }
        self.app.token_pair(user, family, token)
    }

    /// Ends the login of a refresh token, expired or not: every session of its family, the
    /// live one and those rotated within the reuse interval. Never fails: a logout that cannot
    /// reach the database is logged and still clears the client's cookies.
    pub async fn logout(self, refresh_token: Option<&str>) {
        let Some(token) = refresh_token.filter(|t| !t.is_empty()) else {
            return;
        };
        let store = &self.app.inner().store;
        let ended = match store.session_by_token_hash(&token_hash(token)).await {
            Ok(Some(session)) => store
                .delete_session_family(&session.family_id)
                .await
                .map(drop),
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = ended {
            tracing::warn!(error = %err, "logout could not delete the session");
        }
    }

    /// The caller of an access token: valid signature, not expired, an existing, unbanned user.
    pub async fn authenticate(self, access_token: &str) -> Result<Principal> {
        let inner = self.app.inner();
        let claims = inner
            .tokens
            .decode_access(access_token, self.app.now())
            .map_err(|_| Error::Unauthorized(INVALID_TOKEN))?;
        let user = inner
            .store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(Error::Unauthorized(INVALID_TOKEN))?;
        self.app.ensure_not_banned(&user.id).await?;
        Ok(Principal {
            user,
            family: claims.family,
        })
    }

    /// The caller's account with their fallback color and 2FA state.
    pub async fn profile(self, user: User) -> Result<Profile> {
        let store = &self.app.inner().store;
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
    pub async fn change_username(self, user: &User, username: &Username) -> Result<User> {
        let store = &self.app.inner().store;
        let taken = store
            .users_by_username(username)
            .await?
            .iter()
            .any(|other| other.id != user.id);
        if taken {
            return Err(Error::Conflict("Username already taken"));
        }
        self.update_profile(&user.id, Some(username.as_str()), None)
            .await
    }

    /// Changes the caller's e-mail. A new address (by its canonical form) mails the old one a
    /// notice with a link that undoes the change
    /// ([`Recovery::revert_email_change`](super::Recovery::revert_email_change), 7 days, single
    /// use); it takes from the mail budgets of the old address and of `client_ip`. Another
    /// spelling of the same address is saved without a notice.
    pub async fn change_email(
        self,
        user: &User,
        email: &Email,
        client_ip: Option<IpAddr>,
    ) -> Result<User> {
        self.change_email_of(user, email, None, client_ip).await
    }

    /// [`Accounts::change_email`] for any account, with an optional new username in the same
    /// transaction (staff edits).
    pub(crate) async fn change_email_of(
        self,
        target: &User,
        email: &Email,
        username: Option<&Username>,
        client_ip: Option<IpAddr>,
    ) -> Result<User> {
        let username = username.map(Username::as_str);
        if canonical_email(email) == canonical_email(&target.email) {
            return self
                .update_profile(&target.id, username, Some(email.as_str()))
                .await;
        }
        self.app.take_mail_budget(&target.email, client_ip).await?;
        let inner = self.app.inner();
        let token = crate::service::recovery::new_mailed_token();
        let now = self.app.now();
        let revert = EmailRevert {
            token_hash: token_hash(&token),
            user_id: target.id.clone(),
            old_email: target.email.clone(),
            new_email: email.to_string(),
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
        self,
        user_id: &str,
        username: Option<&str>,
        email: Option<&str>,
    ) -> Result<User> {
        let store = &self.app.inner().store;
        match store
            .update_profile(user_id, username, email, self.app.now())
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
    /// every outstanding password-reset and 2FA-disable link stops working. A wrong old password
    /// spends the account's login failure budget (an access token alone must not allow
    /// unlimited guesses); the hashes are admitted for `client_ip`.
    pub async fn change_password(
        self,
        principal: &Principal,
        old_password: &LoginPassword,
        new_password: &Password,
        client_ip: Option<IpAddr>,
    ) -> Result<()> {
        let inner = self.app.inner();
        let user = &principal.user;
        let budget = self.app.account_budget(&user.id);
        let slot = inner.passwords.admit(client_ip)?;
        let changed = self.app.attempt(vec![budget.clone()], client_ip, async {
            if !slot.verify(old_password, &user.password_hash).await? {
                return Ok(Checked::Wrong);
            }
            let namesakes = inner.store.users_by_username(&user.username).await?;
            let hash = slot
                .hash_like(
                    new_password,
                    shared_salt_template(&namesakes, Some(&user.id)),
                )
                .await?;
            let revoked = inner
                .store
                .update_password(&user.id, &hash, principal.family.as_deref(), self.app.now())
                .await?;
            Ok(Checked::Right(revoked))
        });
        let revoked = changed
            .await?
            .ok_or(Error::Rejected("Invalid old password"))?;
        self.app.forget_failures(&budget).await;
        tracing::info!(user_id = %user.id, revoked, "password changed; other sessions revoked");
        Ok(())
    }

    /// Deletes the caller's account and everything that is theirs.
    pub async fn delete_account(self, user: &User) -> Result<()> {
        self.app.inner().store.delete_user(&user.id).await?;
        self.app.announce(Change::UserDeleted {
            user_id: user.id.clone(),
        });
        Ok(())
    }
}

impl App {
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
        let inner = self.inner();
        let family = family.unwrap_or_else(new_id);
        let now = self.now();
        let (session, refresh_token) = inner
            .tokens
            .new_session(&user.id, &family, now)
            .map_err(Error::internal)?;
        inner.store.insert_session(&session).await?;
        inner.store.record_login(&user.id, now).await?;
        let mut tokens = self.token_pair(user, &family, refresh_token)?;
        tokens.user.last_login_at = Some(now);
        Ok(tokens)
    }

    /// `refresh_token` with a fresh access token of the same login family.
    fn token_pair(&self, user: User, family: &str, refresh_token: String) -> Result<IssuedTokens> {
        let access_token = self
            .inner()
            .tokens
            .access_token(&user, family, self.now())
            .map_err(Error::internal)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            user,
        })
    }
}

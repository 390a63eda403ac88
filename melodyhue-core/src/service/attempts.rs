//! Attempts at a secret (a password, a 2FA code): the failure budgets they spend, shared by
//! every use case that checks one.

use std::future::Future;
use std::net::IpAddr;

use super::{Error, Result};
use crate::App;
use crate::auth::throttle::BudgetKey;

/// The outcome of checking a secret.
#[derive(Debug)]
pub(crate) enum Checked<T> {
    /// Right: the attempt's units are given back.
    Right(T),
    /// Wrong: the attempt's units stay spent.
    Wrong,
}

/// The throttle key of a login identifier that names no account: trimmed and compared without
/// case (an e-mail's case never matters; for a username that names nobody it does not either).
/// The one place that says how an identifier is normalised for its budget, so that a canonical
/// e-mail form slots in here.
pub(crate) fn identifier_key(identifier: &str) -> String {
    format!("identifier:{}", identifier.trim().to_lowercase())
}

impl App {
    /// The failure budget of an account's password, whatever identifier named it.
    pub(crate) fn account_budget(&self, user_id: &str) -> BudgetKey {
        BudgetKey {
            key: format!("account:{user_id}"),
            limit: self.config().throttle.max_failures_per_identifier,
        }
    }

    /// The failure budget of a login identifier that names no account.
    pub(crate) fn identifier_budget(&self, identifier: &str) -> BudgetKey {
        BudgetKey {
            key: identifier_key(identifier),
            limit: self.config().throttle.max_failures_per_identifier,
        }
    }

    /// The failure budget of an account's 2FA codes (the second login step, verify, disable).
    pub(crate) fn second_factor_budget(&self, user_id: &str) -> BudgetKey {
        BudgetKey {
            key: format!("second-factor:{user_id}"),
            limit: self.config().throttle.max_failures_per_identifier,
        }
    }

    /// Runs `attempt` once it holds one unit of every budget in `keys` and of the client's
    /// network, taken before anything is checked: `429` (no check at all) when one of them is
    /// spent. A wrong answer keeps the units spent; a right one, or a failure to check at all
    /// (an error), gives them back. `Ok(None)` means wrong.
    pub(crate) async fn attempt<T>(
        &self,
        mut keys: Vec<BudgetKey>,
        client_ip: Option<IpAddr>,
        attempt: impl Future<Output = Result<Checked<T>>>,
    ) -> Result<Option<T>> {
        let inner = self.inner();
        let per_network = self.config().throttle.max_failures_per_ip;
        // `0`: the network's budget is off (`LOGIN_MAX_FAILURES_PER_IP`).
        if let Some(ip) = client_ip.filter(|_| per_network > 0) {
            keys.push(BudgetKey::client(ip, per_network));
        }
        let reservation = inner
            .throttle
            .reserve(&keys, self.now())
            .await
            .map_err(|retry_after| Error::Throttled { retry_after })?;
        match attempt.await {
            Ok(Checked::Wrong) => Ok(None),
            Ok(Checked::Right(value)) => {
                inner.throttle.refund(reservation).await;
                Ok(Some(value))
            }
            Err(err) => {
                inner.throttle.refund(reservation).await;
                Err(err)
            }
        }
    }

    /// Forgets the failures spent from `key` (after the right secret was given).
    pub(crate) async fn forget_failures(&self, key: &BudgetKey) {
        self.inner().throttle.forget(&key.key).await;
    }
}

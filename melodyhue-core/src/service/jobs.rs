//! Background jobs: the daily purge of long-banned accounts and the removal of expired sessions,
//! one-time tokens and login tickets.

use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Result;
use crate::App;
use crate::cluster::changes::Change;

/// A permanently banned account is deleted, with all its data, once its ban is this old.
pub const PURGE_BANNED_AFTER: TimeDelta = TimeDelta::days(180);

/// How often the background jobs run (the first run is at start).
pub const JOBS_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// What the background jobs did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobsReport {
    /// Runs finished since the jobs started.
    pub runs: u64,
    /// Accounts the last run deleted.
    pub purged_users: u64,
    /// Expired sessions the last run deleted.
    pub expired_sessions: u64,
    /// Expired one-time tokens (reset, 2FA-disable, e-mail revert) and login tickets the last
    /// run deleted.
    pub expired_tokens: u64,
}

/// The running background jobs; dropping this stops them.
#[derive(Debug)]
pub struct BackgroundJobs {
    task: JoinHandle<()>,
    reports: watch::Receiver<JobsReport>,
}

impl BackgroundJobs {
    /// The report of the latest run, updated after each run (`runs == 0` before the first).
    pub fn reports(&self) -> watch::Receiver<JobsReport> {
        self.reports.clone()
    }
}

impl Drop for BackgroundJobs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Background jobs: purging long-banned accounts, deleting expired sessions and tokens.
///
/// A view of an [`App`], from [`App::jobs`].
#[derive(Debug, Clone, Copy)]
pub struct Jobs<'a> {
    pub(crate) app: &'a App,
}

impl<'a> Jobs<'a> {
    /// Deletes every account whose permanent ban is older than [`PURGE_BANNED_AFTER`] (by this
    /// app's clock), with all its data, one transaction per account; returns how many. An
    /// account that cannot be deleted is logged and left for the next run.
    pub async fn purge_banned_users(self) -> Result<u64> {
        let store = &self.app.inner().store;
        let now = self.app.now();
        let mut purged = 0;
        for user_id in store.purgeable_users(now - PURGE_BANNED_AFTER).await? {
            // The ban may have been lifted since the list was read.
            match store.active_ban(&user_id, now).await {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(%user_id, error = %err, "purge: ban could not be checked");
                    continue;
                }
            }
            match store.delete_user(&user_id).await {
                Ok(true) => {
                    self.app.announce(Change::UserDeleted {
                        user_id: user_id.clone(),
                    });
                    purged += 1;
                    tracing::info!(%user_id, "purge: banned account deleted");
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(%user_id, error = %err, "purge: account could not be deleted");
                }
            }
        }
        Ok(purged)
    }

    /// Starts the background jobs: at once, then every [`JOBS_PERIOD`]. Each run purges
    /// long-banned accounts ([`Jobs::purge_banned_users`]) and deletes expired sessions, one-time
    /// tokens and login tickets.
    /// Must be called within a Tokio runtime.
    pub fn spawn_background_jobs(self) -> BackgroundJobs {
        self.spawn_background_jobs_every(JOBS_PERIOD)
    }

    /// [`Jobs::spawn_background_jobs`] with another period (tests, embedders).
    pub fn spawn_background_jobs_every(self, period: Duration) -> BackgroundJobs {
        let (sender, reports) = watch::channel(JobsReport::default());
        let app = self.app.clone();
        let task = tokio::spawn(async move {
            // The first tick completes at once, so the jobs also run at start. A zero period
            // would make `interval` panic.
            let mut interval = tokio::time::interval(period.max(Duration::from_millis(1)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for runs in 1.. {
                interval.tick().await;
                let report = app.jobs().run_jobs(runs).await;
                sender.send_replace(report);
            }
        });
        BackgroundJobs { task, reports }
    }

    async fn run_jobs(self, runs: u64) -> JobsReport {
        let purged_users = self.purge_banned_users().await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "purge of banned accounts failed");
            0
        });
        let expired_sessions = self
            .app
            .inner()
            .store
            .delete_expired_sessions(self.app.now())
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = %err, "deleting expired sessions failed");
                0
            });
        let expired_tokens = self
            .app
            .inner()
            .store
            .delete_expired_tokens(self.app.now())
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = %err, "deleting expired tokens failed");
                0
            });
        tracing::info!(
            runs,
            purged_users,
            expired_sessions,
            expired_tokens,
            "background jobs ran"
        );
        JobsReport {
            runs,
            purged_users,
            expired_sessions,
            expired_tokens,
        }
    }
}

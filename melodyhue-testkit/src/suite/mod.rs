//! The black-box HTTP suite every frontend adapter runs over a real socket.
//!
//! An adapter crate runs the whole suite with one line in a test target declared with
//! `harness = false`:
//!
//! ```ignore
//! fn serve(app: melodyhue_core::App, listener: tokio::net::TcpListener) -> melodyhue_testkit::suite::ServeFuture {
//!     Box::pin(my_adapter::serve(app, listener, std::future::pending()))
//! }
//! melodyhue_testkit::http_suite!(serve);
//! ```
//!
//! Each case is a test of its own ([`trials`], `module::case`): it starts a fresh app on a fresh
//! database, serves it on `127.0.0.1:0` with the adapter, and talks HTTP to it. On a backend
//! whose server is not configured, every case is reported as ignored with the reason (and fails
//! under `CI=true`; see [`crate::trial`]).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod cluster;
pub mod conventions;
pub mod docs;
pub mod events;
pub mod legacy;
pub mod modo;
pub mod operations;
pub mod overlays;
pub mod public;
pub mod requests;
pub mod security;
pub mod spotify;
pub mod transport;
pub mod users;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use crate::database::{ScratchDatabase, Server};
use crate::{Need, Trial, trial};
use melodyhue_core::App;
use melodyhue_core::auth::password::HashParams;
use melodyhue_core::clock::OffsetClock;
use melodyhue_core::config::Config;

/// A server future an adapter returns; it serves until dropped.
pub type ServeFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How an adapter serves an app on a listener.
pub type Serve = fn(App, tokio::net::TcpListener) -> ServeFuture;

/// The database a suite run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// A fresh SQLite file per test.
    Sqlite,
    /// A fresh database per test on the PostgreSQL server of `MELODYHUE_TEST_POSTGRES_URL`.
    Postgres,
    /// A fresh database per test on the MariaDB/MySQL server of `MELODYHUE_TEST_MYSQL_URL`.
    MySql,
}

impl Backend {
    /// The database server this backend needs, if any.
    pub fn server(self) -> Option<Server> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Server::Postgres),
            Backend::MySql => Some(Server::MySql),
        }
    }

    /// What a test on this backend needs from outside: its server, if any.
    pub fn needs(self) -> Vec<Need> {
        self.server().map(Server::need).into_iter().collect()
    }
}

/// What a suite run tests: one adapter on one backend.
#[derive(Clone, Copy)]
pub struct Harness {
    /// The adapter.
    pub serve: Serve,
    /// The database.
    pub backend: Backend,
}

/// The secret every test server signs its tokens with.
pub const TEST_JWT_SECRET: &str = "melodyhue-test-secret-0123456789abcdef";
/// The Fernet key of every test server.
pub const TEST_ENCRYPTION_KEY: &str = "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E=";
/// The password [`TestServer::register`] gives its users.
pub const TEST_PASSWORD: &str = "correct-horse-42";

/// One app served by the adapter under test, on its own database.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The app behind the socket (for direct store checks).
    pub app: App,
    /// Its clock; move it to expire tokens and bans.
    pub clock: OffsetClock,
    /// A client without cookie jar or redirects.
    pub http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
    _data: tempfile::TempDir,
    // Last, so the app's connections are gone before the database is dropped.
    _database: Option<ScratchDatabase>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An answer, with its JSON body (or `Null`).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The body's `detail` as text.
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }

    /// The `Set-Cookie` header of cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
}

/// An account made by [`TestServer::register`].
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestServer {
    /// A server with the test defaults.
    pub async fn start(harness: &Harness) -> TestServer {
        Self::start_with(harness, &[]).await
    }

    /// A server with extra environment variables. A `DATABASE_URL` among them replaces the
    /// backend's fresh database (e.g. to adopt an existing one).
    pub async fn start_with(harness: &Harness, vars: &[(&str, &str)]) -> TestServer {
        let data = tempfile::tempdir().expect("temporary directory");
        let data_dir = data.path().display().to_string();
        let given_url = vars.iter().any(|(name, _)| *name == "DATABASE_URL");
        let database = match harness.backend.server() {
            Some(server) if !given_url => Some(ScratchDatabase::create(server).await),
            _ => None,
        };
        let database_url = match &database {
            Some(database) => database.url().to_owned(),
            None => format!("sqlite:{data_dir}/melodyhue.db"),
        };
        let mut all: Vec<(String, String)> = vec![
            ("MELODYHUE_DATA_DIR".into(), data_dir),
            ("DATABASE_URL".into(), database_url),
            ("JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            ("ENCRYPTION_KEY".into(), TEST_ENCRYPTION_KEY.into()),
        ];
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut config = Config::from_vars(all).expect("test configuration");
        config.password_hashing = HashParams::insecure_fast_for_tests();
        let clock = OffsetClock::new();
        let store = melodyhue_core::store::open(config.database_url.expose())
            .await
            .expect("test database");
        let app = App::builder(config, store)
            .clock(Arc::new(clock.clone()))
            .build()
            .expect("test app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let task = tokio::spawn((harness.serve)(app.clone(), listener));
        TestServer {
            base: format!("http://{address}"),
            app,
            clock,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            task,
            _data: data,
            _database: database,
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request built from `self.http` and reads the reply.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        receive(request).await
    }

    /// Sends `count` requests at the same instant, the way a racing client does: each on its
    /// own connection, opened beforehand (and proven with `GET /health`), all released by one
    /// barrier. `request(i, client)` builds the `i`th request on its client. The replies come
    /// in the order of `i`.
    ///
    /// The connections are opened concurrently, so that on a loaded machine the first one is
    /// not left idle past the server's keep-alive timeout before the barrier opens.
    pub async fn at_once<F>(&self, count: usize, request: F) -> Vec<Reply>
    where
        F: Fn(usize, &reqwest::Client) -> reqwest::RequestBuilder,
    {
        let clients: Vec<reqwest::Client> = (0..count)
            .map(|_| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("HTTP client")
            })
            .collect();
        let opened = clients.iter().map(|client| async move {
            receive(client.get(self.url("/health")))
                .await
                .assert_status(200);
        });
        futures_util::future::join_all(opened).await;
        let requests: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, client)| request(i, client))
            .collect();
        release_together(requests).await
    }

    /// A request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Registers `<username>@example.com` with [`TEST_PASSWORD`].
    pub async fn register(&self, username: &str) -> TestUser {
        let email = format!("{username}@example.com");
        let reply = self
            .post(
                "/auth/register",
                None,
                serde_json::json!({"username": username, "email": email, "password": TEST_PASSWORD}),
            )
            .await;
        reply.assert_status(200);
        TestUser {
            id: reply.body["user_id"].as_str().unwrap().to_owned(),
            username: username.to_owned(),
            email,
            password: TEST_PASSWORD.to_owned(),
            access_token: reply.body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: reply.body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Logs in with a password; the full reply.
    pub async fn login(&self, identifier: &str, password: &str) -> Reply {
        self.post(
            "/auth/login",
            None,
            serde_json::json!({"username_or_email": identifier, "password": password}),
        )
        .await
    }
}

/// Sends `requests` at the same instant, each from its own task, all released by one barrier
/// (each on the connection its client already holds); the replies in the order given.
pub async fn release_together(requests: Vec<reqwest::RequestBuilder>) -> Vec<Reply> {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                receive(request).await
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(tasks.len());
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

/// Sends a request and reads the reply.
pub async fn receive(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request reaches the server");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("response body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("response is not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// How many replies have each status, e.g. `[(401, 5), (429, 95)]`, by status.
pub fn status_counts(replies: &[Reply]) -> Vec<(u16, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for reply in replies {
        *counts.entry(reply.status.as_u16()).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

/// Signs arbitrary claims with `secret` and `alg` (for forged-token cases).
pub fn sign_claims(claims: &Value, secret: &str, alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Defines the `main` of a test target (`harness = false`) that runs every suite case ([`trials`])
/// for an adapter's `serve` function and an optional [`Backend`] (SQLite by default).
#[macro_export]
macro_rules! http_suite {
    ($serve:expr) => {
        $crate::http_suite!($serve, $crate::suite::Backend::Sqlite);
    };
    ($serve:expr, $backend:expr) => {
        fn main() -> std::process::ExitCode {
            $crate::run($crate::suite::trials($crate::suite::Harness {
                serve: $serve,
                backend: $backend,
            }))
        }
    };
}

/// A test named `name` that runs `case` on `harness`, with the needs of its backend.
pub fn case<F, Fut>(name: impl Into<String>, harness: Harness, test: F) -> Trial
where
    F: FnOnce(Harness) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    trial(name, harness.backend.needs(), move || test(harness))
}

/// The [`case`]s of [`trials`], listed module by module.
macro_rules! suite_cases {
    ($harness:ident; $($module:ident { $($case:ident),* $(,)? })*) => {
        vec![$($(
            case(
                concat!(stringify!($module), "::", stringify!($case)),
                $harness,
                |harness| async move { $module::$case(&harness).await },
            ),
        )*)*]
    };
}

/// Every case of the suite for `harness`, named `module::case`.
pub fn trials(harness: Harness) -> Vec<Trial> {
    suite_cases!(
        harness;
            conventions {
                health_answers_ok,
                unknown_path_is_404,
                wrong_method_is_405,
                trailing_slash_is_the_same_resource,
                body_over_64_kib_is_413,
                chunked_body_over_64_kib_is_413,
                malformed_json_is_422,
                json_that_is_not_an_object_is_422,
                cors_is_off_by_default,
                cors_answers_preflight_and_allowed_origins,
                cors_with_credentials_echoes_the_origin,
                overlong_ids_are_404,
            }
            auth {
                register_returns_tokens_and_cookies,
                register_validates_every_field,
                register_refuses_taken_email_case_insensitively,
                concurrent_registrations_of_one_email_give_one_account,
                login_by_email_or_username,
                login_with_shared_username_picks_the_matching_password,
                login_refuses_wrong_credentials,
                login_validates_its_body,
                two_logins_in_one_second_get_different_tokens,
                refresh_rotates_the_session,
                refresh_reads_the_cookie,
                refresh_reuse_revokes_the_family,
                refresh_reuse_within_the_interval_answers_the_current_pair,
                concurrent_refreshes_keep_one_branch,
                refresh_reuse_interval_zero_revokes_at_once,
                logout_with_a_just_rotated_token_ends_the_login,
                refresh_explains_bad_tokens,
                refresh_with_an_expired_token_is_refused,
                logout_clears_cookies_and_ends_the_session,
                logout_never_fails,
                access_token_from_cookie_or_bearer,
                forged_and_expired_access_tokens_are_401,
                cookie_attributes_follow_the_configuration,
            }
            users {
                me_shows_the_account,
                public_profile_and_unknown_user,
                change_username,
                change_email,
                change_password_revokes_other_sessions,
                delete_account_removes_everything,
                settings_defaults_and_patch,
                settings_aliases_of_the_overlay_color,
                settings_refuse_bad_values_and_change_nothing,
            }
            overlays {
                overlay_lifecycle,
                overlays_are_listed_oldest_first,
                overlay_defaults_and_validation,
                other_users_overlays_are_not_found,
                duplicate_names_the_copy,
                public_overlay_needs_no_auth,
            }
            security {
                two_factor_setup_and_verification,
                two_factor_login_takes_a_ticket_and_a_code,
                two_factor_codes_work_once,
                concurrent_logins_with_one_code_cannot_both_pass,
                tickets_die_after_five_wrong_codes_or_five_minutes,
                banned_users_stop_at_the_second_step,
                two_factor_disable_with_a_code,
                two_factor_disable_by_email,
                two_factor_disable_tokens_expire,
                password_reset_by_email,
                forgot_answers_the_same_for_unknown_emails,
                reset_tokens_in_debug_mode_and_their_expiry,
                mail_failures_do_not_fail_requests,
                login_throttle_per_identifier,
                login_success_forgets_earlier_failures,
                login_throttle_per_client_ip,
                the_network_budget_can_be_turned_off,
                forwarded_ips_count_only_behind_a_trusted_proxy,
                trusted_proxy_hops_count_from_the_right,
                concurrent_guesses_spend_the_budget_before_hashing,
                guesses_by_username_and_email_share_the_account_budget,
                concurrent_codes_on_one_ticket_check_five,
                two_factor_code_checks_spend_the_second_factor_budget,
                totp_codes_may_hold_spaces_and_dashes,
                every_hashing_route_is_admitted_per_client,
                a_full_hash_queue_answers_503_and_light_clients_go_first,
                shared_usernames_cost_one_hash_per_failed_login,
            }
            spotify {
                spotify_credentials_are_stored_encrypted,
                spotify_authorize_url,
                spotify_callback_connects_and_logout_disconnects,
                spotify_connects_the_way_the_frontend_does,
                spotify_state_is_single_use_bound_and_expiring,
                spotify_authorizations_in_two_tabs_complete_with_their_own_redirect,
                color_follows_the_playing_cover,
                silence_pauses_ads_and_unknown_items_show_the_fallback,
                episodes_use_the_episode_or_show_image,
                many_viewers_share_one_poll_and_idle_users_cost_nothing,
                a_deleted_accounts_spotify_is_called_no_more,
                rate_limits_are_honoured,
                failures_back_off_and_fall_back,
                incomplete_covers_show_the_fallback_color,
                revoked_refresh_tokens_disconnect_the_user,
                expired_access_tokens_are_renewed,
                endless_access_tokens_are_kept_a_day_at_most,
                rotated_refresh_tokens_keep_the_user_connected,
                rotations_survive_a_database_that_cannot_store_them,
                a_refused_old_token_never_clears_a_newer_one,
                a_callback_racing_with_the_poller_wins,
                two_servers_share_a_rotating_connection,
                infos_keep_absent_values_null,
                progress_stops_at_the_duration,
                rate_limits_with_an_http_date_are_honoured,
                a_spotify_that_never_answers_never_holds_viewers,
                covers_are_fetched_once_for_all_users,
                metrics_count_spotify_calls_and_cover_cache,
                covers_only_come_from_allowed_hosts,
                websocket_needs_a_token,
                websocket_answers_a_client_close,
                websocket_waits_for_the_answer_to_its_close,
                websocket_streams_now_playing_changes,
                websocket_sees_every_change_of_what_is_shown,
                banning_kicks_open_websockets,
            }
            events {
                the_first_event_is_the_current_infos,
                track_changes_arrive_as_events,
                fallback_color_changes_arrive_as_events,
                last_event_id_skips_what_the_client_shows,
                streams_are_capped_per_ip_and_in_total,
                a_client_that_goes_away_frees_its_place,
                events_of_an_unknown_user_are_404,
                a_reader_that_stops_reading_is_dropped,
                a_quiet_stream_outlives_the_keep_alive_timeout,
            }
            docs {
                openapi_document_describes_every_operation,
                signed_in_operations_answer_401_without_a_token,
                docs_page_renders_the_document,
            }
            operations {
                every_response_has_a_request_id,
                a_clients_request_id_is_kept_when_sane,
                metrics_are_off_by_default,
                metrics_count_requests_pool_and_cache,
                metrics_are_never_public_by_accident,
            }
            public {
                color_falls_back_to_the_default_color,
                infos_without_music,
                new_default_color_shows_at_once,
                deleted_user_is_404_at_once,
                unknown_user_is_404,
            }
            transport {
                silent_and_trickling_connections_are_closed,
                idle_keep_alive_connections_are_closed,
                slow_bodies_are_answered_408,
                the_connection_cap_sheds_trickling_clients_not_real_ones,
                metric_labels_come_from_closed_sets,
                websocket_messages_over_4_kib_end_the_socket,
                websockets_per_user_are_capped,
                websockets_that_answer_no_ping_are_closed,
            }
            requests {
                nul_characters_are_unknown_ids_or_422,
                cross_site_requests_with_cookies_are_refused,
                bearer_requests_ignore_origin_and_content_type,
                non_json_bodies_are_415_without_a_bearer_token,
                websocket_cookies_count_only_from_allowed_origins,
                websocket_upgrades_read_the_path_like_every_route,
            }
            admin {
                admin_routes_are_for_admins_only,
                stats_count_accounts_and_overlays,
                admin_users_are_paged_newest_first,
                list_parameters_are_validated,
                search_matches_wildcards_literally,
                roles_change_but_the_last_admin_stays,
                warnings_are_listed_and_deleted,
            }
            modo {
                modo_routes_are_for_moderators_and_admins,
                moderators_see_users_with_their_bans,
                moderators_edit_users_but_not_admins,
                warnings_by_moderators,
                ban_revokes_sessions_and_blocks_every_route,
                banned_staff_lose_their_powers,
                temporary_bans_end_by_themselves,
                ban_rules,
                moderators_manage_overlays,
                purge_deletes_long_permanent_bans_only,
                background_jobs_run_at_start_and_repeat,
            }
            accounts {
                email_identity_is_one_canonical_form,
                reset_links_die_when_one_is_used_or_the_password_changes,
                email_change_mails_a_revert_link_to_the_old_address,
                a_later_revert_cannot_undo_an_earlier_one,
                only_admins_change_other_users_email,
                mail_budgets_limit_each_address_and_ip,
                the_mail_network_budget_can_be_turned_off,
                expired_tokens_are_purged_by_the_daily_job,
                ban_until_is_read_as_pydantic_reads_datetimes,
                messages_land_where_the_frontend_matches_them,
                racing_links_work_once,
                concurrent_resets_let_one_link_win,
            }
    )
}

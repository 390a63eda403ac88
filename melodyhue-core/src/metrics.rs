//! Prometheus metrics, served by `GET /metrics` when `METRICS=true`.
//!
//! One registry per [`App`](crate::App), so that several apps in one process (tests,
//! embedders) never mix their series. Requests are counted as they are answered; the state of
//! the hub, the Spotify client, the connection pool and the client connections is read at each
//! scrape.
//!
//! Every label comes from a closed set, so that no client can create series: route templates
//! (never raw paths), the standard methods plus `other`, the statuses the server answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::events::StreamCounts;
use crate::cluster::Cluster;
use crate::mail::Outbox;
use crate::service::now_playing::hub::NowPlayingHub;
use crate::spotify::SpotifyClient;
use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// The route label of requests no route matched: their paths are not labels, or a scanner
/// could create any number of series.
const UNMATCHED: &str = "unmatched";

/// The method label: one of RFC 9110's methods (and PATCH), else `other`. Any token is a valid
/// method, so a client inventing methods must not invent series.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// Why the server closed a client connection: the `reason` label of
/// `melodyhue_http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionClose {
    /// Refused at accept: the connection cap was reached and every connection was busy.
    Shed,
    /// Closed while idle to make room for a new one (the cap, or no file descriptor left).
    Evicted,
    /// Its first request's headers did not arrive in time.
    HeaderTimeout,
    /// No request in flight for the keep-alive timeout.
    KeepAliveTimeout,
    /// Ended by an error: reset or aborted by the client, malformed HTTP, ...
    Error,
    /// Its writes made no progress for `HTTP_WRITE_TIMEOUT`: the client stopped reading.
    WriteTimeout,
}

impl ConnectionClose {
    const ALL: [ConnectionClose; 6] = [
        ConnectionClose::Shed,
        ConnectionClose::Evicted,
        ConnectionClose::HeaderTimeout,
        ConnectionClose::KeepAliveTimeout,
        ConnectionClose::Error,
        ConnectionClose::WriteTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            ConnectionClose::Shed => "shed",
            ConnectionClose::Evicted => "evicted",
            ConnectionClose::HeaderTimeout => "header_timeout",
            ConnectionClose::KeepAliveTimeout => "keep_alive_timeout",
            ConnectionClose::Error => "error",
            ConnectionClose::WriteTimeout => "write_timeout",
        }
    }
}

/// Client connections of the app's server, counted whether or not metrics are served (a few
/// atomic additions), so that a client's misbehaviour is counted rather than logged.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounts {
    open: AtomicU64,
    closed: [AtomicU64; ConnectionClose::ALL.len()],
}

// Counted by the server of feature `server`.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
impl ConnectionCounts {
    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// One open connection (or upgraded socket) is gone, whatever the reason.
    pub(crate) fn released(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, reason: ConnectionClose) {
        self.closed[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The registry of one app.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

/// What the metrics read the live state from at each scrape.
pub(crate) struct MetricSources {
    pub(crate) hub: NowPlayingHub,
    pub(crate) spotify: SpotifyClient,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) connections: Arc<ConnectionCounts>,
    pub(crate) outbox: Outbox,
    pub(crate) event_streams: Arc<StreamCounts>,
    /// This node's `NODE_ID`.
    pub(crate) node_id: String,
    pub(crate) cluster: Option<Cluster>,
}

impl Metrics {
    pub(crate) fn new(sources: MetricSources) -> Self {
        let MetricSources {
            hub,
            spotify,
            store,
            connections,
            outbox,
            event_streams,
            node_id,
            cluster,
        } = sources;
        let mut registry = Registry::with_prefix("melodyhue");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route template",
            latency.clone(),
        );
        registry.register_collector(Box::new(StateCollector {
            hub,
            spotify,
            store,
            connections,
        }));
        registry.register_collector(Box::new(MailCollector { outbox }));
        registry.register_collector(Box::new(EventStreamCollector { event_streams }));
        registry.register_collector(Box::new(NodeCollector { node_id, cluster }));
        Metrics {
            registry,
            requests,
            latency,
        }
    }

    /// Counts one answered request. `route` is the template (`/color/{user_id}`), empty
    /// when no route matched.
    pub(crate) fn observe(&self, route: &'static str, method: &str, status: u16, took: Duration) {
        let route = if route.is_empty() { UNMATCHED } else { route };
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method: method_label(method),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(took.as_secs_f64());
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Reads the outbox's counts at each scrape: mails sent, failed and dropped, and requests a
/// mail budget refused (dropped mails are counted here, not logged one by one).
#[derive(Debug)]
struct MailCollector {
    outbox: Outbox,
}

impl Collector for MailCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let stats = self.outbox.stats();
        let mut messages = encoder.encode_descriptor(
            "mail_messages",
            "Mails handed to the outbox, by outcome: sent, failed, or dropped because the recipient or the whole queue had too many waiting",
            None,
            MetricType::Counter,
        )?;
        for (outcome, count) in [
            ("sent", stats.sent),
            ("failed", stats.failed),
            ("dropped_recipient_full", stats.dropped_recipient_full),
            ("dropped_queue_full", stats.dropped_queue_full),
        ] {
            ConstCounter::new(count).encode(messages.encode_family(&[("outcome", outcome)])?)?;
        }
        let mut refused = encoder.encode_descriptor(
            "mail_requests_refused",
            "Mail-sending requests answered 429 because a budget was spent, by budget",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.refused_address)
            .encode(refused.encode_family(&[("budget", "address")])?)?;
        ConstCounter::new(stats.refused_ip).encode(refused.encode_family(&[("budget", "ip")])?)?;
        Ok(())
    }
}

/// Reads the number of open `/infos/{user_id}/events` streams at each scrape.
#[derive(Debug)]
struct EventStreamCollector {
    event_streams: Arc<StreamCounts>,
}

impl Collector for EventStreamCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        gauge(
            &mut encoder,
            "event_streams_open",
            "Server-Sent Event streams (/infos/{user_id}/events) open now",
            self.event_streams.open() as u64,
        )
    }
}

/// This node's name, and its view of the cluster when there is one.
#[derive(Debug)]
struct NodeCollector {
    node_id: String,
    cluster: Option<Cluster>,
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let info = ConstGauge::new(1);
        info.encode(
            encoder
                .encode_descriptor(
                    "node_info",
                    "This node (always 1), labelled with its NODE_ID",
                    None,
                    MetricType::Gauge,
                )?
                .encode_family(&[("node_id", self.node_id.as_str())])?,
        )?;
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let status = cluster.status();
        gauge(
            &mut encoder,
            "cluster_redis_up",
            "Whether the last call to the cluster's Redis succeeded (1) or failed (0)",
            u64::from(status.redis_up),
        )?;
        counter(
            &mut encoder,
            "cluster_redis_failures",
            "Calls to Redis that failed or timed out",
            status.redis_failures,
        )?;
        counter(
            &mut encoder,
            "cluster_redis_outages",
            "Times this node lost Redis (a failed call while it was thought up, as at start), each logged once",
            status.redis_outages,
        )?;
        counter(
            &mut encoder,
            "cluster_leases_taken",
            "Users whose polling this node took over (a lease taken in Redis)",
            status.leases_taken,
        )?;
        counter(
            &mut encoder,
            "cluster_claims_deferred",
            "Claims that timed out while Redis was only slow: followed instead of polling alone",
            status.claims_deferred,
        )
    }
}

/// Reads the live state at each scrape.
struct StateCollector {
    hub: NowPlayingHub,
    spotify: SpotifyClient,
    store: Arc<dyn Store>,
    connections: Arc<ConnectionCounts>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// One unlabelled counter (`<name>_total`).
fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut calls = encoder.encode_descriptor(
            "spotify_calls",
            "Calls to Spotify (accounts, Web API, cover images) by kind and outcome",
            None,
            MetricType::Counter,
        )?;
        for (kind, outcome, count) in self.spotify.call_counts() {
            let labels = [("kind", kind), ("outcome", outcome)];
            ConstCounter::new(count).encode(calls.encode_family(&labels)?)?;
        }

        let stats = self.hub.stats();
        let hits = stats.cover_lookups.saturating_sub(stats.cover_misses);
        let mut covers = encoder.encode_descriptor(
            "cover_cache_lookups",
            "Cover color lookups by result: a hit reuses a color, a miss downloads and analyses the cover",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(hits).encode(covers.encode_family(&[("result", "hit")])?)?;
        ConstCounter::new(stats.cover_misses)
            .encode(covers.encode_family(&[("result", "miss")])?)?;
        counter(
            &mut encoder,
            "late_first_answers",
            "Viewers answered with the fallback color because nothing was known of the user within 1 s",
            stats.late_first_answers,
        )?;
        gauge(
            &mut encoder,
            "watched_users",
            "Users whose playback is being polled now",
            stats.watched_users as u64,
        )?;

        gauge(
            &mut encoder,
            "http_connections_open",
            "Client connections open now, upgraded WebSockets included",
            self.connections.open.load(Ordering::Relaxed),
        )?;
        let mut closed = encoder.encode_descriptor(
            "http_connections_closed",
            "Client connections the server closed, by reason",
            None,
            MetricType::Counter,
        )?;
        for reason in ConnectionClose::ALL {
            let count = self.connections.closed[reason as usize].load(Ordering::Relaxed);
            ConstCounter::new(count)
                .encode(closed.encode_family(&[("reason", reason.label())])?)?;
        }

        if let Some(pool) = self.store.pool_usage() {
            let in_use = pool.open.saturating_sub(pool.idle);
            let mut connections = encoder.encode_descriptor(
                "db_pool_connections",
                "Database connections by state",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(in_use))
                .encode(connections.encode_family(&[("state", "in_use")])?)?;
            ConstGauge::new(i64::from(pool.idle))
                .encode(connections.encode_family(&[("state", "idle")])?)?;
            gauge(
                &mut encoder,
                "db_pool_max_connections",
                "The most connections the pool opens",
                u64::from(pool.max),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("OPTIONS"), "OPTIONS");
        assert_eq!(method_label("get"), "other");
        assert_eq!(method_label("BREW"), "other");
    }
}

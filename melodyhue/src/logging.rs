//! The server's log: `LOG_LEVEL` filters, `LOG_FORMAT` chooses text or JSON lines, and every
//! line names the node that wrote it (`NODE_ID`), so the logs of a cluster can be read merged.

use std::fmt;
use std::io::IsTerminal as _;

use melodyhue_core::config::{Config, LogFormat};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber; the error names `LOG_LEVEL` when its filter does not parse.
pub(crate) fn init(config: &Config) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(&config.log_level).map_err(|err| format!("invalid LOG_LEVEL: {err}"))?;
    let node_id = config.node_id.clone();
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .event_format(WithNodeId::json(node_id))
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            // Colors for a person at a terminal; none in files, pipes and journald.
            .with_ansi(std::io::stdout().is_terminal())
            .event_format(WithNodeId::text(node_id))
            .init(),
    }
    Ok(())
}

/// An event formatter that adds the node's id to each line of `inner`: a leading `node_id`
/// key in a JSON object, a leading `node_id=...` in text.
///
/// Tasks spawned on the runtime do not inherit a span, so a span around the server would
/// miss the lines of the pollers and connections; the formatter reaches every line.
struct WithNodeId<F> {
    inner: F,
    /// What is written before each line: `{"node_id":"…"` for JSON, `node_id=… ` for text.
    prefix: String,
    json: bool,
}

impl WithNodeId<format::Format<format::Json>> {
    fn json(node_id: String) -> Self {
        let quoted = serde_json::Value::String(node_id).to_string();
        Self {
            inner: format::format().json(),
            prefix: format!("{{\"node_id\":{quoted}"),
            json: true,
        }
    }
}

impl WithNodeId<format::Format<format::Full>> {
    fn text(node_id: String) -> Self {
        Self {
            inner: format::format(),
            // Debug quoting keeps an id with spaces or control characters on one field.
            prefix: if node_id.chars().all(|c| c.is_ascii_graphic()) {
                format!("node_id={node_id} ")
            } else {
                format!("node_id={node_id:?} ")
            },
            json: false,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithNodeId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !self.json {
            writer.write_str(&self.prefix)?;
            return self.inner.format_event(ctx, writer, event);
        }
        // The JSON formatter writes one object per line: open it with the node's key.
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let Some(rest) = line.strip_prefix('{') else {
            return writer.write_str(&line);
        };
        writer.write_str(&self.prefix)?;
        if !rest.starts_with('}') {
            writer.write_char(',')?;
        }
        writer.write_str(rest)
    }
}

//! Reading a server's `/metrics` (OpenMetrics text), for the suite and the benches.
#![allow(clippy::expect_used)] // test support: a server that does not answer fails the test

/// `GET <base>/metrics` as text (`base`: `http://127.0.0.1:<port>`). Panics unless it answers
/// `200`.
pub async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200, "{base}/metrics");
    response.text().await.expect("the metrics text")
}

/// The value of the sample `series` (its name, with its labels as the server writes them:
/// `melodyhue_spotify_calls_total{kind="cover",outcome="ok"}`) in a `/metrics` text. Panics,
/// naming it, when it is missing.
pub fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

//! Which cover URLs may be downloaded: the image hosts of `SPOTIFY_IMAGE_HOSTS`, and a size cap.

use std::fmt;

use url::Url;

/// Which cover URLs may be downloaded, and how big a cover may be.
///
/// Covers come from URLs in Spotify's answers; downloading only from known image hosts
/// keeps a forged or proxied answer from making the server fetch arbitrary URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePolicy {
    /// Hosts covers may come from (`SPOTIFY_IMAGE_HOSTS`).
    pub allowed_hosts: Vec<AllowedHost>,
    /// Largest cover accepted, in bytes; a larger one is refused without being buffered.
    pub max_bytes: usize,
}

impl ImagePolicy {
    /// The default of `SPOTIFY_IMAGE_HOSTS`: where the Web API points album, show and
    /// episode images (`i.scdn.co`, and Spotify's newer image CDN). Playlist mosaics and
    /// other editorial images live on other hosts, but never appear in a currently-playing
    /// answer, so they are left out.
    pub const DEFAULT_HOSTS: &str =
        "i.scdn.co,image-cdn-ak.spotifycdn.com,image-cdn-fa.spotifycdn.com";
    /// The default size cap of a cover: Spotify's 640 px JPEGs weigh well under 1 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;

    /// Parses a `SPOTIFY_IMAGE_HOSTS` value: a comma-separated list of entries, blanks
    /// ignored. A bare host (`i.scdn.co`) allows `https` only; an entry with a scheme
    /// (`http://127.0.0.1`, `https://images.example:8443`) allows that scheme (`http` or
    /// `https`) for that host. An entry with a port allows that port only, one without a
    /// port any port. No paths, credentials or wildcards. An empty list allows nothing.
    pub fn parse_hosts(list: &str) -> Result<Vec<AllowedHost>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::parse)
            .collect()
    }

    /// Whether a cover may be downloaded from `url` (scheme, host and port).
    pub fn allows(&self, url: &Url) -> bool {
        self.allowed_hosts.iter().any(|host| host.allows(url))
    }
}

impl Default for ImagePolicy {
    fn default() -> Self {
        Self {
            allowed_hosts: Self::parse_hosts(Self::DEFAULT_HOSTS).unwrap_or_default(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// One entry of an [`ImagePolicy`]: a scheme, a host, and optionally a port.
///
/// Parse it from text (`"i.scdn.co"`, `"http://127.0.0.1:8080"`); see
/// [`ImagePolicy::parse_hosts`] for the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    /// Whether `url` has this entry's scheme and host, and its port when it names one.
    pub fn allows(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && self
                .port
                .is_none_or(|port| url.port_or_known_default() == Some(port))
    }
}

impl std::str::FromStr for AllowedHost {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let invalid = |why: &str| format!("invalid image host {entry:?}: {why}");
        if entry.contains('*') {
            return Err(invalid("wildcards are not supported"));
        }
        let url = if entry.contains("://") {
            Url::parse(entry)
        } else {
            Url::parse(&format!("https://{entry}"))
        }
        .map_err(|error| invalid(&error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("only http and https are allowed"));
        }
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials are not allowed"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a host may not have a path or query"));
        }
        Ok(Self {
            scheme: url.scheme().to_owned(),
            host: host.to_owned(),
            port: url.port(),
        })
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_hosts_parse() {
        let hosts =
            ImagePolicy::parse_hosts(" i.scdn.co , http://127.0.0.1:8080,,HTTPS://Example.COM")
                .unwrap();
        let shown: Vec<String> = hosts.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "https://i.scdn.co",
                "http://127.0.0.1:8080",
                "https://example.com"
            ]
        );
        assert_eq!(ImagePolicy::parse_hosts(""), Ok(vec![]));
        for bad in [
            "ftp://i.scdn.co",
            "*.scdn.co",
            "https://i.scdn.co/path",
            "https://user:pw@i.scdn.co",
            "i.scdn.co?x=1",
            "http://",
            "exa mple.com",
        ] {
            assert!(ImagePolicy::parse_hosts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_policy_checks_scheme_host_and_port() {
        let policy = ImagePolicy {
            allowed_hosts: ImagePolicy::parse_hosts(
                "i.scdn.co,http://127.0.0.1:8080,http://localhost",
            )
            .unwrap(),
            max_bytes: 1,
        };
        let allows = |url: &str| policy.allows(&Url::parse(url).unwrap());
        assert!(allows("https://i.scdn.co/image/ab67616d0000b273"));
        assert!(allows("https://I.SCDN.CO/image/x"));
        assert!(!allows("http://i.scdn.co/image/x"));
        assert!(!allows("https://i.scdn.co.evil.example/image/x"));
        assert!(!allows("https://evil.example/i.scdn.co"));
        assert!(allows("http://127.0.0.1:8080/images/a"));
        assert!(!allows("http://127.0.0.1:8081/images/a"));
        assert!(!allows("https://127.0.0.1:8080/images/a"));
        assert!(allows("http://localhost:1234/x"));
        assert!(!allows("file:///etc/passwd"));
        assert!(ImagePolicy::default().allows(&Url::parse("https://i.scdn.co/image/x").unwrap()));
    }
}

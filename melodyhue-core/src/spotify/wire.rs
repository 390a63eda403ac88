//! Spotify's JSON answers (the wire types), read leniently into the client's types.

use std::time::Duration;

use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::Value;

use super::client::{CurrentlyPlaying, CurrentlyPlayingType, Playback, SpotifyError, TokenGrant};

/// Access-token lifetime assumed when the accounts service does not say (Spotify: 1 h).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest lifetime taken from a token answer's `expires_in`. Spotify's access tokens live an
/// hour; a larger number (a faulty endpoint) is held to a day, as a `Retry-After` is
/// ([`super::client::MAX_RETRY_AFTER`]), and never overflows a deadline.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

// Spotify's JSON is read leniently: a field that is missing, `null` or of an unexpected
// type becomes `None`, so that one odd field never loses the whole answer.

/// A scalar field (string, number, boolean).
pub(super) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

/// A field holding an object.
fn object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(from_object(Value::deserialize(deserializer)?))
}

/// A field holding an array of objects; entries that are not objects are skipped.
fn objects<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(deserializer)? {
        Value::Array(values) => Ok(Some(values.into_iter().filter_map(from_object).collect())),
        _ => Ok(None),
    }
}

/// `T` from a JSON object, and only from an object: serde would also build a struct from
/// an array of its fields in order.
fn from_object<T: DeserializeOwned>(value: Value) -> Option<T> {
    if value.is_object() {
        T::deserialize(value).ok()
    } else {
        None
    }
}

pub(super) fn parse_object<T: DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, SpotifyError> {
    serde_json::from_slice(body)
        .ok()
        .and_then(from_object)
        .ok_or_else(|| SpotifyError::InvalidResponse(format!("{what} is not a JSON object")))
}

pub(super) fn parse_token_grant(body: &[u8]) -> Result<TokenGrant, SpotifyError> {
    #[derive(serde::Deserialize)]
    struct TokenJson {
        #[serde(default, deserialize_with = "lenient")]
        access_token: Option<String>,
        #[serde(default, deserialize_with = "lenient")]
        expires_in: Option<u64>,
        #[serde(default, deserialize_with = "lenient")]
        refresh_token: Option<String>,
    }
    let json: TokenJson = parse_object(body, "token answer")?;
    let access_token = json
        .access_token
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            SpotifyError::InvalidResponse("token answer without access_token".to_owned())
        })?;
    Ok(TokenGrant {
        access_token,
        expires_in: json.expires_in.map_or(DEFAULT_TOKEN_LIFETIME, |secs| {
            Duration::from_secs(secs).min(MAX_TOKEN_LIFETIME)
        }),
        refresh_token: json.refresh_token.filter(|token| !token.is_empty()),
    })
}

#[derive(serde::Deserialize)]
struct CurrentlyPlayingJson {
    #[serde(default, deserialize_with = "lenient")]
    is_playing: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    progress_ms: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    currently_playing_type: Option<String>,
    #[serde(default, deserialize_with = "object")]
    item: Option<ItemJson>,
}

#[derive(Default, serde::Deserialize)]
struct ItemJson {
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    item_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    uri: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    duration_ms: Option<u64>,
    #[serde(default, deserialize_with = "objects")]
    artists: Option<Vec<NamedJson>>,
    #[serde(default, deserialize_with = "object")]
    album: Option<AlbumJson>,
    #[serde(default, deserialize_with = "objects")]
    images: Option<Vec<ImageJson>>,
    #[serde(default, deserialize_with = "object")]
    show: Option<ShowJson>,
}

#[derive(serde::Deserialize)]
struct NamedJson {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
}

#[derive(serde::Deserialize)]
struct AlbumJson {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "objects")]
    images: Option<Vec<ImageJson>>,
}

#[derive(serde::Deserialize)]
struct ShowJson {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    publisher: Option<String>,
    #[serde(default, deserialize_with = "objects")]
    images: Option<Vec<ImageJson>>,
}

#[derive(serde::Deserialize)]
struct ImageJson {
    #[serde(default, deserialize_with = "lenient")]
    url: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    width: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    height: Option<u64>,
}

fn playing_type(name: Option<&str>) -> Option<CurrentlyPlayingType> {
    match name? {
        "track" => Some(CurrentlyPlayingType::Track),
        "episode" => Some(CurrentlyPlayingType::Episode),
        "ad" => Some(CurrentlyPlayingType::Ad),
        _ => None,
    }
}

/// The URL of the largest image (by area; the first of equals, as Spotify lists the
/// largest first and sometimes omits sizes).
fn largest_image(images: Option<&Vec<ImageJson>>) -> Option<String> {
    images?
        .iter()
        .filter_map(|image| {
            let url = image.url.as_deref().filter(|url| !url.is_empty())?;
            let area = image
                .width
                .unwrap_or(0)
                .saturating_mul(image.height.unwrap_or(0));
            Some((area, url))
        })
        .fold(None::<(u64, &str)>, |best, candidate| match best {
            Some(best) if best.0 >= candidate.0 => Some(best),
            _ => Some(candidate),
        })
        .map(|(_, url)| url.to_owned())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

pub(super) fn parse_currently_playing(body: &[u8]) -> Result<Playback, SpotifyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Playback::Nothing);
    }
    let json: CurrentlyPlayingJson = parse_object(body, "currently-playing answer")?;
    let item_type = json
        .item
        .as_ref()
        .and_then(|item| playing_type(item.item_type.as_deref()));
    let currently_playing_type = playing_type(json.currently_playing_type.as_deref())
        .or(item_type)
        .unwrap_or(CurrentlyPlayingType::Unknown);
    let item = match (json.item, currently_playing_type) {
        (Some(item), _) => item,
        // A track or episode answer without its item has nothing to show.
        (None, CurrentlyPlayingType::Track | CurrentlyPlayingType::Episode) => {
            return Ok(Playback::Nothing);
        }
        (None, CurrentlyPlayingType::Ad | CurrentlyPlayingType::Unknown) => ItemJson::default(),
    };
    let show = item.show.as_ref();
    let mut artists: Vec<String> = item
        .artists
        .unwrap_or_default()
        .into_iter()
        .filter_map(|artist| non_empty(artist.name))
        .collect();
    if artists.is_empty() {
        artists.extend(show.and_then(|show| {
            non_empty(show.publisher.clone()).or_else(|| non_empty(show.name.clone()))
        }));
    }
    let album = item.album.as_ref();
    Ok(Playback::Item(CurrentlyPlaying {
        currently_playing_type,
        is_playing: json.is_playing.unwrap_or(false),
        progress_ms: json.progress_ms,
        id: non_empty(item.id),
        uri: non_empty(item.uri),
        name: non_empty(item.name),
        artists,
        album: non_empty(album.and_then(|album| album.name.clone()))
            .or_else(|| non_empty(show.and_then(|show| show.name.clone()))),
        duration_ms: item.duration_ms,
        image_url: largest_image(album.and_then(|album| album.images.as_ref()))
            .or_else(|| largest_image(item.images.as_ref()))
            .or_else(|| largest_image(show.and_then(|show| show.images.as_ref()))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Playback, SpotifyError> {
        parse_currently_playing(json.as_bytes())
    }

    fn item(json: &str) -> CurrentlyPlaying {
        match parse(json) {
            Ok(Playback::Item(now)) => now,
            other => panic!("expected an item, got {other:?}"),
        }
    }

    #[test]
    fn a_track_with_its_largest_cover() {
        let now = item(
            r#"{"is_playing": true, "progress_ms": 1000, "currently_playing_type": "track",
                "item": {"type": "track", "id": "t1", "uri": "spotify:track:t1", "name": "Song", "duration_ms": 200000,
                  "artists": [{"name": "A"}, {"name": null}, {"name": "B"}, {}],
                  "album": {"name": "Album", "images": [
                    {"url": "https://i.scdn.co/300", "width": 300, "height": 300},
                    {"url": "https://i.scdn.co/640", "width": 640, "height": 640},
                    {"url": "https://i.scdn.co/64", "width": 64, "height": 64}]}}}"#,
        );
        assert_eq!(
            now,
            CurrentlyPlaying {
                currently_playing_type: CurrentlyPlayingType::Track,
                is_playing: true,
                progress_ms: Some(1000),
                id: Some("t1".into()),
                uri: Some("spotify:track:t1".into()),
                name: Some("Song".into()),
                artists: vec!["A".into(), "B".into()],
                album: Some("Album".into()),
                duration_ms: Some(200_000),
                image_url: Some("https://i.scdn.co/640".into()),
            }
        );
    }

    #[test]
    fn a_local_file_keeps_its_absent_values_absent() {
        let now = item(
            r#"{"is_playing": true, "progress_ms": 5000, "currently_playing_type": "track",
                "item": {"type": "track", "id": null, "is_local": true,
                  "uri": "spotify:local:Band:Demo+Tape:Song+One:180", "name": "Song One",
                  "duration_ms": null, "artists": [{"id": null, "name": "Band"}],
                  "album": {"id": null, "name": "Demo Tape", "images": []}}}"#,
        );
        assert_eq!(now.id, None);
        assert_eq!(
            now.uri.as_deref(),
            Some("spotify:local:Band:Demo+Tape:Song+One:180")
        );
        assert_eq!(now.duration_ms, None);
        assert_eq!(now.image_url, None);
        assert_eq!(now.artists, ["Band"]);
        assert_eq!(now.album.as_deref(), Some("Demo Tape"));
    }

    #[test]
    fn images_without_sizes_give_the_first() {
        let now = item(
            r#"{"item": {"type": "track", "album": {"images": [
                {"url": "https://i.scdn.co/a", "width": null, "height": null},
                {"url": "https://i.scdn.co/b"}]}}}"#,
        );
        assert_eq!(now.image_url.as_deref(), Some("https://i.scdn.co/a"));
        assert_eq!(now.currently_playing_type, CurrentlyPlayingType::Track);
        assert!(!now.is_playing);
    }

    #[test]
    fn an_episode_uses_its_image_then_the_show_image() {
        let with_own = item(
            r#"{"is_playing": true, "currently_playing_type": "episode",
                "item": {"type": "episode", "id": "e1", "name": "Ep", "images": [{"url": "https://i.scdn.co/ep"}],
                  "show": {"name": "Show", "publisher": "Pub", "images": [{"url": "https://i.scdn.co/show"}]}}}"#,
        );
        assert_eq!(
            with_own.currently_playing_type,
            CurrentlyPlayingType::Episode
        );
        assert_eq!(with_own.image_url.as_deref(), Some("https://i.scdn.co/ep"));
        assert_eq!(with_own.artists, ["Pub"]);
        assert_eq!(with_own.album.as_deref(), Some("Show"));
        let show_only = item(
            r#"{"currently_playing_type": "episode",
                "item": {"type": "episode", "images": null,
                  "show": {"name": "Show", "publisher": "", "images": [{"url": "https://i.scdn.co/show"}]}}}"#,
        );
        assert_eq!(
            show_only.image_url.as_deref(),
            Some("https://i.scdn.co/show")
        );
        assert_eq!(show_only.artists, ["Show"]);
    }

    #[test]
    fn ads_and_unknown_types_are_items_without_details() {
        let ad = item(r#"{"is_playing": true, "currently_playing_type": "ad", "item": null}"#);
        assert_eq!(ad.currently_playing_type, CurrentlyPlayingType::Ad);
        assert!(ad.is_playing);
        assert_eq!(ad.name, None);
        let unknown = item(r#"{"currently_playing_type": "unknown", "item": null}"#);
        assert_eq!(
            unknown.currently_playing_type,
            CurrentlyPlayingType::Unknown
        );
        let future = item(r#"{"currently_playing_type": "audiobook", "item": null}"#);
        assert_eq!(future.currently_playing_type, CurrentlyPlayingType::Unknown);
    }

    #[test]
    fn no_item_or_empty_body_is_nothing() {
        for body in [
            "",
            "  \n",
            r#"{"currently_playing_type": "track", "item": null}"#,
            r#"{"currently_playing_type": "episode"}"#,
            r#"{"currently_playing_type": "track", "item": ["Song", "Artist"]}"#,
        ] {
            assert_eq!(parse(body), Ok(Playback::Nothing), "{body:?}");
        }
    }

    #[test]
    fn odd_fields_are_ignored_not_fatal() {
        let now = item(
            r#"{"is_playing": "yes", "progress_ms": -5, "currently_playing_type": 7,
                "item": {"type": "track", "id": 12, "name": ["x"], "duration_ms": 1.5,
                  "artists": [null, 3, ["Bad"], {"name": "Ok"}], "album": ["Album"],
                  "images": {"url": "x"}, "show": null}}"#,
        );
        assert_eq!(now.currently_playing_type, CurrentlyPlayingType::Track);
        assert!(!now.is_playing);
        assert_eq!(now.progress_ms, None);
        assert_eq!(now.id, None);
        assert_eq!(now.name, None);
        assert_eq!(now.duration_ms, None);
        assert_eq!(now.artists, ["Ok"]);
        assert_eq!(now.album, None);
        assert_eq!(now.image_url, None);
    }

    #[test]
    fn non_objects_are_invalid_responses() {
        for body in ["null", "[]", "\"text\"", "{", "<html>", "\u{0}"] {
            assert!(
                matches!(parse(body), Err(SpotifyError::InvalidResponse(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn token_lifetimes_are_held_to_a_day() {
        let grant =
            parse_token_grant(br#"{"access_token": "at", "expires_in": 18446744073709551615}"#)
                .unwrap();
        assert_eq!(grant.expires_in, MAX_TOKEN_LIFETIME);
        let grant = parse_token_grant(br#"{"access_token": "at", "expires_in": 3600}"#).unwrap();
        assert_eq!(grant.expires_in, Duration::from_secs(3600));
    }

    #[test]
    fn token_grants_tolerate_missing_fields_but_need_a_token() {
        let grant =
            parse_token_grant(br#"{"access_token": "at", "token_type": "Bearer"}"#).unwrap();
        assert_eq!(grant.access_token, "at");
        assert_eq!(grant.expires_in, DEFAULT_TOKEN_LIFETIME);
        assert_eq!(grant.refresh_token, None);
        for body in [
            &br#"{"expires_in": 3600}"#[..],
            br#"{"access_token": ""}"#,
            b"[]",
            b"",
        ] {
            assert!(matches!(
                parse_token_grant(body),
                Err(SpotifyError::InvalidResponse(_))
            ));
        }
    }
}

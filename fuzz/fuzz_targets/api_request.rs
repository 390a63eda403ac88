//! Arbitrary requests into the framework-neutral HTTP layer: every answer is a status with a
//! JSON body, never a panic and never a 500.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use melodyhue_core::App;
use melodyhue_core::api;
use melodyhue_core::auth::password::HashParams;
use melodyhue_core::config::Config;

#[derive(Arbitrary, Debug)]
struct FuzzRequest {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    /// Adds a valid `Authorization: Bearer` of a registered user, to reach the handlers behind
    /// authentication.
    authenticated: bool,
    body: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
    Put,
    Options,
    Other(String),
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: App,
    token: String,
    _data: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let data = std::env::temp_dir().join(format!("melodyhue-fuzz-{}", std::process::id()));
        let mut config = Config::from_vars([
            ("MELODYHUE_DATA_DIR", data.display().to_string()),
            ("DATABASE_URL", format!("sqlite:{}/fuzz.db", data.display())),
            ("JWT_SECRET", "fuzz-secret".to_owned()),
            ("ENCRYPTION_KEY", "fuzz-encryption-key".to_owned()),
            ("ENABLE_CORS", "true".to_owned()),
            ("CORS_ALLOW_ORIGINS", "https://app.example".to_owned()),
        ])
        .expect("config");
        config.password_hashing = HashParams::insecure_fast_for_tests();
        let (app, token) = runtime.block_on(async {
            let app = App::connect(config).await.expect("app");
            let register = http::Request::post("/auth/register")
                .body(Bytes::from_static(
                    br#"{"username":"fuzzer","email":"fuzzer@example.com","password":"fuzz-password"}"#,
                ))
                .expect("request");
            let response = api::handle(&app, register, None).await;
            let bytes = response.into_body().into_bytes().expect("a whole body");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            let token = body["access_token"].as_str().expect("token").to_owned();
            (app, token)
        });
        Fixture {
            runtime,
            app,
            token,
            _data: data,
        }
    })
}

fuzz_target!(|input: FuzzRequest| {
    let fixture = fixture();
    let method = match input.method {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
        Method::Patch => http::Method::PATCH,
        Method::Delete => http::Method::DELETE,
        Method::Put => http::Method::PUT,
        Method::Options => http::Method::OPTIONS,
        Method::Other(name) => match http::Method::from_bytes(name.as_bytes()) {
            Ok(method) => method,
            Err(_) => return,
        },
    };
    let path = if input.path.starts_with('/') {
        input.path
    } else {
        format!("/{}", input.path)
    };
    let Ok(mut request) = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Bytes::from(input.body))
    else {
        return;
    };
    for (name, value) in input.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            request.headers_mut().append(name, value);
        }
    }
    if input.authenticated {
        if let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {}", fixture.token)) {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
    }
    let response = fixture
        .runtime
        .block_on(api::handle(&fixture.app, request, None));
    assert_ne!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/json");
    // Event streams are not JSON, and never end: only whole bodies are read.
    if let (true, Ok(bytes)) = (is_json, response.into_body().into_bytes()) {
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
    }
});

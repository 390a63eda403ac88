//! `/openapi.json` and `/docs`: the document describes every operation the server answers.

use std::collections::BTreeSet;

use super::{Harness, TestServer};
use melodyhue_core::api::openapi::{documented_operations, signed_in_operations};

/// Sends `method` to a documented `path`, its parameters filled with unknown ids; the status
/// and the body.
async fn call(server: &TestServer, method: &str, path: &str) -> (u16, String) {
    let concrete = path
        .replace("{user_id}", "nobody")
        .replace("{id}", "nothing");
    let response = server
        .http
        .request(method.parse().unwrap(), server.url(&concrete))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

pub async fn openapi_document_describes_every_operation(h: &Harness) {
    let server = TestServer::start_with(h, &[("METRICS", "true")]).await;
    let reply = server.get("/openapi.json", None).await;
    reply.assert_status(200);
    let document = &reply.body;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let operations = documented_operations();
    assert!(operations.len() > 50);
    for &(method, path) in &operations {
        let described = &document["paths"][path][method.to_ascii_lowercase()];
        assert!(
            described.is_object(),
            "{method} {path} is not in the document"
        );
        assert!(
            described["responses"].is_object(),
            "{method} {path} has no responses"
        );
        // The server routes it: an unknown id may be 404, but not the router's "Not Found",
        // and the method is served (no 405).
        let (status, body) = call(&server, method, path).await;
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !(status == 404 && body.contains(r#""Not Found""#)),
            "{method} {path} is documented but not routed"
        );
    }
    // The other way round: on a documented path, every method the document leaves out is
    // refused by the router. (Router and document read one route table, so this holds unless
    // something answers outside the table.)
    let paths: BTreeSet<&str> = operations.iter().map(|(_, path)| *path).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if operations.contains(&(method, path)) {
                continue;
            }
            assert_eq!(
                call(&server, method, path).await.0,
                405,
                "{method} {path} is routed but not in the document"
            );
        }
    }
}

/// Every operation the route table reserves for signed-in callers (users or staff) answers
/// `401` to a request without a token, before it reads anything else.
pub async fn signed_in_operations_answer_401_without_a_token(h: &Harness) {
    let server = TestServer::start(h).await;
    let operations = signed_in_operations();
    assert!(operations.len() > 30);
    for &(method, path) in &operations {
        let (status, body) = call(&server, method, path).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body, r#"{"detail":"Invalid token"}"#, "{method} {path}");
    }
}

pub async fn docs_page_renders_the_document(h: &Harness) {
    let server = TestServer::start(h).await;
    let response = server.http.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("swagger-ui"));
    assert!(page.contains(r#"url: "/openapi.json""#));
    // Both CDN files (style and script) are pinned by hash, not only by version.
    assert_eq!(page.matches(r#"integrity="sha384-"#).count(), 2, "{page}");
}

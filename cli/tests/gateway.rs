//! The gateway on loopback ports: Lambda's invoke contract with the real handlers, and the
//! proxy to an upstream that echoes what it received.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use stackwave_cli::gateway::{serve_on, GatewayConfig};

/// An upstream that answers 201 with what it got, and a header of its own.
async fn echo(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let echo = json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "custom": parts.headers.get("x-custom").and_then(|v| v.to_str().ok()),
        "host": parts.headers.get("host").and_then(|v| v.to_str().ok()),
        "body": String::from_utf8_lossy(&body),
    });
    let text = echo.to_string();
    let mut resp = Response::new(Body::from(text.clone()));
    *resp.status_mut() = StatusCode::CREATED;
    resp.headers_mut()
        .insert("x-upstream", HeaderValue::from_static("moto"));
    resp.headers_mut()
        .insert("content-length", HeaderValue::from(text.len()));
    resp
}

async fn start() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(upstream, axum::Router::new().fallback(echo))
            .await
            .unwrap()
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = GatewayConfig {
        endpoint: format!("http://{addr}"),
        listen: addr,
        emulator_url: format!("http://{upstream_addr}"),
        bucket: "stackwave-artifacts-123456789012".into(),
        topic_arn: "arn:aws:sns:us-east-1:123456789012:stackwave-alerts".into(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve_on(listener, cfg, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap()
    });
    (addr, stop)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn a_handler_error_follows_lambdas_error_contract() {
    let (addr, _stop) = start().await;
    let arn = urlencoding::encode("arn:aws:lambda:us-east-1:123456789012:function:stackwave-plan");
    let resp = client()
        .post(format!(
            "http://{addr}/2015-03-31/functions/{arn}/invocations"
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-amz-function-error"], "Unhandled");
    assert_eq!(resp.headers()["x-amz-executed-version"], "$LATEST");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorType"], "InvalidInput", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Accepted shape"),
        "{body}"
    );
}

#[tokio::test]
async fn every_function_is_served_by_name_and_an_unknown_one_is_not_found() {
    let (addr, _stop) = start().await;
    for name in [
        "stackwave-plan",
        "stackwave-deploy-stack",
        "stackwave-check",
        "stackwave-notify",
        "stackwave-finalize",
    ] {
        // A wrong shape reaches the handler, which rejects it: proof the name is routed.
        let resp = client()
            .post(format!(
                "http://{addr}/2015-03-31/functions/{name}/invocations"
            ))
            .body(r#"{"unexpected": true}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(
            resp.headers()["x-amz-function-error"],
            "Unhandled",
            "{name}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["errorType"], "InvalidInput", "{name}: {body}");
    }
    let resp = client()
        .post(format!(
            "http://{addr}/2015-03-31/functions/stackwave-nope/invocations"
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["Message"].as_str().unwrap().contains("stackwave-nope"),
        "{body}"
    );
}

#[tokio::test]
async fn everything_else_is_proxied_verbatim() {
    let (addr, _stop) = start().await;
    let resp = client()
        .put(format!(
            "http://{addr}/some-bucket/path/to%20key.yaml?x-id=PutObject&a=1"
        ))
        .header("x-custom", "kept")
        .body("template body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-upstream"], "moto");
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(
        echo["uri"],
        "/some-bucket/path/to%20key.yaml?x-id=PutObject&a=1"
    );
    assert_eq!(echo["custom"], "kept");
    assert_eq!(
        echo["host"],
        addr.to_string(),
        "the Host header reaches moto unchanged"
    );
    assert_eq!(echo["body"], "template body");

    // A non-POST on an invoke path is not an invoke.
    let resp = client()
        .get(format!(
            "http://{addr}/2015-03-31/functions/stackwave-plan/invocations"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "GET");
}

#[tokio::test]
async fn an_unreachable_emulator_is_a_bad_gateway_naming_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A port nothing listens on: bind one, note it, drop it.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = GatewayConfig {
        endpoint: format!("http://{addr}"),
        listen: addr,
        emulator_url: format!("http://{dead}"),
        bucket: "b".into(),
        topic_arn: "t".into(),
    };
    tokio::spawn(async move {
        serve_on(listener, cfg, std::future::pending())
            .await
            .unwrap()
    });
    let resp = client()
        .get(format!("http://{addr}/_stackwave/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&dead.to_string()),
        "{body}"
    );
}

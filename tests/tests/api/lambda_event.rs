//! The handlers read API Gateway HTTP API (payload v2) events exactly as the
//! Lambda runtime delivers them: path, query string, headers and base64 bodies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use lambda_http::request::from_str;
use serde_json::json;
use sync_core::handlers::{Endpoint, dispatch_among, handle};
use trainsync_tests::{TestContext, activity, gzip};
use uuid::Uuid;

fn event(
    method: &str,
    path: &str,
    query: &str,
    token: &str,
    body: Option<(String, bool)>,
    gzipped: bool,
) -> String {
    let mut headers =
        json!({"authorization": format!("Bearer {token}"), "content-type": "application/json"});
    if gzipped {
        headers["content-encoding"] = json!("gzip");
    }
    let query_map: serde_json::Map<String, serde_json::Value> = url_pairs(query)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let (body, is_base64) = body.unwrap_or_default();
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": if query.is_empty() { serde_json::Value::Null } else { query_map.into() },
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "req-1", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "25/Nov/2026:12:00:00 +0000", "timeEpoch": 1_795_000_000_000u64
        },
        "body": if body.is_empty() { serde_json::Value::Null } else { body.into() },
        "isBase64Encoded": is_base64
    })
    .to_string()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn api_gateway_events_reach_the_handlers_intact() {
    let ctx = TestContext::new().await;
    let token = ctx.token("frank", "phone");
    let sync_id = ctx.check(&token, "frank").await;

    // A gzip body arrives base64-encoded.
    let body = json!({"sync_id": sync_id, "sync_request_id": Uuid::new_v4(),
                      "activities": [activity(Uuid::new_v4(), "a"), activity(Uuid::new_v4(), "b")]});
    let encoded = STANDARD.encode(gzip(body.to_string().as_bytes()));
    let request = from_str(&event(
        "POST",
        "/sync/upload",
        "",
        &token,
        Some((encoded, true)),
        true,
    ))
    .expect("v2 event");
    let response = handle(&ctx.state, Endpoint::Upload, request).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Query parameters come through `queryStringParameters`.
    let request = from_str(&event(
        "GET",
        "/sync/download",
        "limit=1",
        &token,
        None,
        false,
    ))
    .expect("v2 event");
    let response = handle(&ctx.state, Endpoint::Download, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: serde_json::Value = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected text, got {other:?}"),
    };
    assert_eq!(page["activities"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], true);

    // A bad parameter is named.
    let request = from_str(&event(
        "GET",
        "/sync/download",
        "limit=0",
        &token,
        None,
        false,
    ))
    .expect("v2 event");
    let response = handle(&ctx.state, Endpoint::Download, request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// The devices function serves three routes. Behind a named stage API Gateway
/// prefixes the path (`/prod/devices/...`) but names the route and its
/// parameters itself, which is what routing and `device_id` come from.
#[tokio::test]
async fn a_named_stage_still_routes_by_route_key_and_path_parameters() {
    let ctx = TestContext::new().await;
    let token = ctx.token("grace", "tablet");
    let register = json!({"platform": "ios", "push_token": null, "app_version": "1.0.0"});
    let mut put: serde_json::Value = serde_json::from_str(&event(
        "PUT",
        "/prod/devices/tablet",
        "",
        &token,
        Some((register.to_string(), false)),
        false,
    ))
    .expect("json");
    put["routeKey"] = json!("PUT /devices/{device_id}");
    put["requestContext"]["routeKey"] = json!("PUT /devices/{device_id}");
    put["requestContext"]["stage"] = json!("prod");
    put["pathParameters"] = json!({"device_id": "tablet"});
    let request = from_str(&put.to_string()).expect("v2 event");
    let response = dispatch_among(&ctx.state, &Endpoint::DEVICES, request).await;
    assert_eq!(response.status(), StatusCode::OK, "{:?}", response.body());

    let mut list: serde_json::Value =
        serde_json::from_str(&event("GET", "/prod/devices", "", &token, None, false))
            .expect("json");
    list["routeKey"] = json!("GET /devices");
    list["requestContext"]["routeKey"] = json!("GET /devices");
    list["requestContext"]["stage"] = json!("prod");
    let request = from_str(&list.to_string()).expect("v2 event");
    let response = dispatch_among(&ctx.state, &Endpoint::DEVICES, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let listed: serde_json::Value = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected text, got {other:?}"),
    };
    assert_eq!(listed["devices"][0]["device_id"], "tablet", "{listed}");
}

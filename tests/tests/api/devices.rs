//! Devices and their tokens on DynamoDB Local: registration, listing,
//! logout of one device (refused on every endpoint, the others untouched),
//! the revocation cache's bound across containers, refresh rotation with
//! reuse detection, expiry of access and refresh tokens, and login again.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sync_core::auth::revocation::REVOCATION_CACHE_SECS;
use sync_core::handlers::Endpoint;
use sync_core::refresh::{REFRESH_GRACE_SECS, REFRESH_IDLE_DAYS};
use trainsync_tests::{TestContext, TestResponse};

use crate::helpers::text;

const USER: &str = "runner-7";

/// A request to `endpoint` with `token`: path parameters filled with
/// harmless values, a small JSON body where the method takes one.
async fn call(ctx: &TestContext, endpoint: Endpoint, token: &str, device: &str) -> TestResponse {
    let path = endpoint
        .path()
        .replace("{conflict_id}", &uuid::Uuid::nil().to_string())
        .replace("{activity_id}", &uuid::Uuid::nil().to_string())
        .replace("{version}", "current")
        .replace("{device_id}", device);
    let body = (endpoint.method() != Method::GET).then(|| json!({}));
    ctx.request(endpoint.method(), &path, Some(token), body.as_ref())
        .await
}

#[tokio::test]
async fn a_device_registers_itself_and_is_listed() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let response = ctx.register(&phone, "phone", Some("apns-token-1")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
    let view = response.json();
    assert_eq!(view["device_id"], "phone");
    assert_eq!(view["platform"], "ios");
    assert_eq!(view["current"], true);
    assert_eq!(view["revoked"], false);
    // No push provider in this context: the token is kept, nothing is pushed.
    assert_eq!(view["push_enabled"], false);
    assert_eq!(view["registered_at"], json!(ctx.now()));

    // Updating keeps the first registration time and takes the new facts.
    ctx.clock.advance(Duration::hours(1));
    let update = ctx
        .request(
            Method::PUT,
            "/devices/phone",
            Some(&phone),
            Some(
                &json!({"platform": "ios", "push_token": null, "app_version": "4.3.0",
                         "os_version": "18.1", "network": "cellular", "locale": "de-CH"}),
            ),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK, "{}", text(&update));
    let view = update.json();
    assert_eq!(view["app_version"], "4.3.0");
    assert_eq!(view["network"], "cellular");
    assert_eq!(view["registered_at"], json!(ctx.now() - Duration::hours(1)));

    ctx.clock.advance(Duration::minutes(1));
    let tablet = ctx.token(USER, "tablet");
    assert_eq!(
        ctx.register(&tablet, "tablet", None).await.status,
        StatusCode::OK
    );
    let list = ctx.get("/devices", &tablet, &[]).await;
    assert_eq!(list.status, StatusCode::OK, "{}", text(&list));
    let devices = list.json()["devices"].as_array().cloned().unwrap();
    let ids: Vec<(&str, bool)> = devices
        .iter()
        .map(|d| {
            (
                d["device_id"].as_str().unwrap(),
                d["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [("tablet", true), ("phone", false)],
        "most recently seen first"
    );
}

#[tokio::test]
async fn registration_is_only_for_the_tokens_own_device_and_checks_its_fields() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let other = ctx.register(&phone, "tablet", Some("t")).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", text(&other));
    assert_eq!(other.error_field().as_deref(), Some("device_id"));

    for (bad, field) in [
        (
            json!({"platform": "symbian", "app_version": "1"}),
            "platform",
        ),
        (json!({"platform": "ios"}), "app_version"),
        (
            json!({"platform": "ios", "app_version": "1", "push_token": 7}),
            "push_token",
        ),
        (
            json!({"platform": "ios", "app_version": "1", "user_id": "x"}),
            "user_id",
        ),
    ] {
        let response = ctx
            .request(Method::PUT, "/devices/phone", Some(&phone), Some(&bad))
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.error_field().as_deref(), Some(field), "{bad}");
    }
    let malformed = ctx
        .send(
            http::Request::builder()
                .method(Method::PUT)
                .uri("https://api.example.com/devices/phone")
                .header("authorization", format!("Bearer {phone}"))
                .header("content-type", "application/json")
                .body(lambda_http::Body::from("{\"platform\":"))
                .unwrap(),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let bad_id = ctx
        .request(Method::DELETE, "/devices/bad%20id", Some(&phone), None)
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST, "{}", text(&bad_id));
    assert_eq!(bad_id.error_field().as_deref(), Some("device_id"));
    let unknown = ctx
        .request(Method::DELETE, "/devices/watch", Some(&phone), None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "device_not_found");
}

#[tokio::test]
async fn a_logged_out_device_is_refused_on_every_endpoint_and_the_others_are_not() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    for (token, device) in [(&phone, "phone"), (&tablet, "tablet")] {
        assert_eq!(
            ctx.register(token, device, Some("t")).await.status,
            StatusCode::OK
        );
    }
    // The tablet logs the phone out.
    let revoked = ctx
        .request(Method::DELETE, "/devices/phone", Some(&tablet), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", text(&revoked));
    assert_eq!(revoked.json()["revoked"], true);
    assert_eq!(revoked.json()["revoked_reason"], "logout");
    // Revoking again keeps the first revocation.
    ctx.clock.advance(Duration::minutes(1));
    let again = ctx
        .request(Method::DELETE, "/devices/phone", Some(&tablet), None)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["revoked_at"], revoked.json()["revoked_at"]);

    for endpoint in Endpoint::ALL {
        if endpoint == Endpoint::AuthRefresh {
            continue; // no bearer token; covered by the refresh tests
        }
        let response = call(&ctx, endpoint, &phone, "phone").await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{endpoint:?}: {}",
            text(&response)
        );
        assert_eq!(response.error_code(), "device_revoked", "{endpoint:?}");
    }
    // The tablet is untouched, and sees the phone as logged out.
    let list = ctx.get("/devices", &tablet, &[]).await;
    assert_eq!(list.status, StatusCode::OK);
    let phone_view = list.json()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "phone")
        .cloned()
        .unwrap();
    assert_eq!(phone_view["revoked"], true);
    assert_eq!(phone_view["push_enabled"], false);
    let status = ctx.get("/sync/status", &tablet, &[]).await;
    assert_eq!(status.status, StatusCode::OK);
}

/// `GET /devices` with `token` through another container's `state`.
async fn devices_via(state: &sync_core::state::AppState, token: String) -> StatusCode {
    sync_core::handlers::dispatch(
        state,
        trainsync_tests::get_request("/devices", Some(&token), &[]),
    )
    .await
    .status()
}

#[tokio::test]
async fn another_container_refuses_a_logged_out_device_within_the_cache_bound() {
    let ctx = TestContext::new().await;
    let phone = ctx.token(USER, "phone");
    let tablet = ctx.token(USER, "tablet");
    assert_eq!(
        ctx.register(&phone, "phone", None).await.status,
        StatusCode::OK
    );

    // A second "container": its own state (and revocation cache) on the same table.
    let other = ctx.another_container(ctx.clock.clone());
    let via_other = |token: String| devices_via(&other, token);
    assert_eq!(
        via_other(phone.clone()).await,
        StatusCode::OK,
        "warms its cache"
    );

    assert_eq!(
        ctx.request(Method::DELETE, "/devices/phone", Some(&tablet), None)
            .await
            .status,
        StatusCode::OK
    );
    // This container refuses at once.
    assert_eq!(
        ctx.get("/devices", &phone, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The other one trusts what it read until the cache bound, then refuses.
    assert_eq!(via_other(phone.clone()).await, StatusCode::OK);
    ctx.clock
        .advance(Duration::seconds(REVOCATION_CACHE_SECS + 1));
    assert_eq!(via_other(phone.clone()).await, StatusCode::UNAUTHORIZED);
}

/// A device that logs in again through one container is not refused by
/// another container that cached its earlier login: a token naming another
/// login than the cached one makes that container read the device again.
#[tokio::test]
async fn a_new_login_is_admitted_at_once_by_a_container_that_cached_the_old_one() {
    let ctx = TestContext::new().await;
    let old = ctx.login(USER, "phone").await;
    let other = ctx.another_container(ctx.clock.clone());
    let via_other = |token: String| devices_via(&other, token);
    assert_eq!(
        via_other(old.access_token.clone()).await,
        StatusCode::OK,
        "caches the first login"
    );

    // A login takes a moment; the container re-reads at most once a second.
    ctx.clock.advance(Duration::seconds(1));
    let new = ctx.login(USER, "phone").await;
    assert_eq!(
        via_other(new.access_token.clone()).await,
        StatusCode::OK,
        "the new login works in the warm container at once"
    );
    assert_eq!(
        via_other(old.access_token).await,
        StatusCode::UNAUTHORIZED,
        "the earlier login stays refused"
    );
}

fn pair(response: &TestResponse) -> (String, String) {
    assert_eq!(response.status, StatusCode::OK, "{}", text(response));
    assert_eq!(
        response
            .headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let json: Value = response.json();
    (
        json["access_token"].as_str().unwrap().to_owned(),
        json["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_logs_the_device_out() {
    let ctx = TestContext::new().await;
    let login = ctx.login(USER, "phone").await;
    assert_eq!(login.expires_in, 24 * 3600);
    assert_eq!(
        ctx.get("/devices", &login.access_token, &[]).await.status,
        StatusCode::OK
    );

    ctx.clock.advance(Duration::hours(23));
    let (access2, refresh2) = pair(&ctx.refresh(&login.refresh_token).await);
    assert_ne!(refresh2, login.refresh_token);
    assert_eq!(
        ctx.get("/devices", &access2, &[]).await.status,
        StatusCode::OK
    );
    ctx.clock.advance(Duration::hours(1));
    let (access3, refresh3) = pair(&ctx.refresh(&refresh2).await);
    assert_eq!(
        ctx.get("/devices", &access3, &[]).await.status,
        StatusCode::OK
    );

    // Another device of the user, logged in separately, must not be affected.
    let tablet = ctx.login(USER, "tablet").await;

    // The first refresh token comes back (a stolen copy): the phone is logged out.
    let reused = ctx.refresh(&login.refresh_token).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{}", text(&reused));
    assert_eq!(reused.error_code(), "refresh_token_reused");
    assert_eq!(reused.error_field().as_deref(), Some("refresh_token"));
    let after = ctx.get("/devices", &access3, &[]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.error_code(), "device_revoked");
    let current = ctx.refresh(&refresh3).await;
    assert_eq!(current.status, StatusCode::UNAUTHORIZED);
    assert_eq!(current.error_code(), "device_revoked");

    let list = ctx.get("/devices", &tablet.access_token, &[]).await;
    assert_eq!(list.status, StatusCode::OK, "{}", text(&list));
    let phone = list.json()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "phone")
        .cloned()
        .unwrap();
    assert_eq!(phone["revoked_reason"], "refresh_token_reuse");
    assert!(!pair(&ctx.refresh(&tablet.refresh_token).await).0.is_empty());
}

#[tokio::test]
async fn a_logout_refuses_the_refresh_token_and_a_new_login_works_alone() {
    let ctx = TestContext::new().await;
    let first = ctx.login(USER, "phone").await;
    let tablet = ctx.token(USER, "tablet");
    assert_eq!(
        ctx.request(Method::DELETE, "/devices/phone", Some(&tablet), None)
            .await
            .status,
        StatusCode::OK
    );
    let refused = ctx.refresh(&first.refresh_token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.error_code(), "device_revoked");

    // Logging in again brings the device back; the old login's tokens stay dead.
    let second = ctx.login(USER, "phone").await;
    assert_eq!(
        ctx.get("/devices", &second.access_token, &[]).await.status,
        StatusCode::OK
    );
    let old = ctx.get("/devices", &first.access_token, &[]).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(old.error_code(), "device_revoked");
    // A token without a login (issued elsewhere) no longer works for it either.
    assert_eq!(
        ctx.get("/devices", &ctx.token(USER, "phone"), &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ctx.refresh(&first.refresh_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    pair(&ctx.refresh(&second.refresh_token).await);
}

#[tokio::test]
async fn expired_and_malformed_tokens_are_refused() {
    let ctx = TestContext::new().await;
    let login = ctx.login(USER, "phone").await;
    ctx.clock.advance(Duration::hours(25));
    let expired = ctx.get("/devices", &login.access_token, &[]).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.error_code(), "token_expired");
    // The refresh token still works after the access token expired.
    let (access, refresh) = pair(&ctx.refresh(&login.refresh_token).await);
    assert_eq!(
        ctx.get("/devices", &access, &[]).await.status,
        StatusCode::OK
    );

    // Unused for longer than the idle limit, it expires too.
    ctx.clock
        .advance(Duration::days(REFRESH_IDLE_DAYS) + Duration::minutes(1));
    let idle = ctx.refresh(&refresh).await;
    assert_eq!(idle.status, StatusCode::UNAUTHORIZED);
    assert_eq!(idle.error_code(), "refresh_token_expired");

    for bad in [
        json!({"refresh_token": "rt1.not-a-uuid.x"}),
        json!({"refresh_token": format!("rt1.{}.AAAA", uuid::Uuid::new_v4())}),
    ] {
        let response = ctx
            .request(Method::POST, "/auth/refresh", None, Some(&bad))
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(response.error_code(), "invalid_refresh_token");
    }
    // A token of an unknown login (well formed, never issued).
    let forged = sync_core::refresh::RefreshToken::generate(uuid::Uuid::new_v4()).encode();
    assert_eq!(
        ctx.refresh(&forged).await.error_code(),
        "invalid_refresh_token"
    );
    for (bad, field) in [
        (json!({}), "refresh_token"),
        (json!({"refresh_token": 5}), "refresh_token"),
        (json!({"refresh_token": "x", "user_id": "u"}), "user_id"),
    ] {
        let response = ctx
            .request(Method::POST, "/auth/refresh", None, Some(&bad))
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.error_field().as_deref(), Some(field), "{bad}");
    }
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_all_get_the_same_new_pair() {
    let ctx = Arc::new(TestContext::new().await);
    let login = ctx.login(USER, "phone").await;
    let attempts = futures::future::join_all((0..4).map(|_| {
        let ctx = ctx.clone();
        let token = login.refresh_token.clone();
        async move { ctx.refresh(&token).await }
    }))
    .await;
    // Two app components waking at once: one rotation, every caller gets its
    // result, and the device stays signed in.
    let pairs: Vec<(String, String)> = attempts.iter().map(pair).collect();
    let refresh_tokens: BTreeSet<&String> = pairs.iter().map(|(_, r)| r).collect();
    assert_eq!(refresh_tokens.len(), 1, "one new refresh token: {pairs:?}");
    for (access, _) in &pairs {
        assert_eq!(
            ctx.get("/devices", access, &[]).await.status,
            StatusCode::OK
        );
    }
    let next = ctx.refresh(&pairs[0].1).await;
    assert_eq!(next.status, StatusCode::OK, "{}", text(&next));
}

/// A phone refreshes, the response is lost in a tunnel, the phone retries
/// with the token it still holds: within the grace minute it gets the same
/// new refresh token; after it, the old token is theft.
#[tokio::test]
async fn a_refresh_retried_after_a_lost_response_repeats_and_a_late_one_is_theft() {
    let ctx = TestContext::new().await;
    let login = ctx.login(USER, "phone").await;
    let (_, lost) = pair(&ctx.refresh(&login.refresh_token).await);
    ctx.clock.advance(Duration::seconds(REFRESH_GRACE_SECS - 5));
    let (access, repeated) = pair(&ctx.refresh(&login.refresh_token).await);
    assert_eq!(repeated, lost, "the same new refresh token");
    assert_eq!(
        ctx.get("/devices", &access, &[]).await.status,
        StatusCode::OK
    );

    ctx.clock.advance(Duration::seconds(10));
    let late = ctx.refresh(&login.refresh_token).await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED, "{}", text(&late));
    assert_eq!(late.error_code(), "refresh_token_reused");
    assert_eq!(
        ctx.get("/devices", &access, &[]).await.error_code(),
        "device_revoked"
    );
}

/// Knowing a login id (the `sid` of every access token) is not enough to log
/// a device out: a refresh token with a forged secret is refused and changes
/// nothing.
#[tokio::test]
async fn a_forged_refresh_token_for_a_real_login_changes_nothing() {
    let ctx = TestContext::new().await;
    let login = ctx.login(USER, "phone").await;
    let family = login
        .refresh_token
        .split('.')
        .nth(1)
        .expect("family")
        .to_owned();
    let forged = format!("rt1.{family}.{}", "A".repeat(43));
    for _ in 0..3 {
        let refused = ctx.refresh(&forged).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert_eq!(refused.error_code(), "invalid_refresh_token");
        assert_eq!(refused.error_field().as_deref(), Some("refresh_token"));
    }
    assert_eq!(
        ctx.get("/devices", &login.access_token, &[]).await.status,
        StatusCode::OK,
        "the device is still signed in"
    );
    let (_, next) = pair(&ctx.refresh(&login.refresh_token).await);
    assert_ne!(next, login.refresh_token, "its real token still rotates");
}

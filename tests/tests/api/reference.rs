//! Shared reference data: publication (versioned, replicated over shards,
//! chunked) and `GET /reference/{version}` (cacheable, ETag, gzip), against
//! DynamoDB Local.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use sync_core::store::ReferenceStore;
use trainsync_protocol::reference::{
    PublishOutcome, REFERENCE_SHARDS, ReferenceEntry, ReferenceKind, ReferenceSnapshot,
};
use trainsync_protocol::validate::FieldErrorCode;
use trainsync_tests::{TestContext, TestResponse, get_request, gunzip};

use crate::helpers::{expect_error, header, sort_keys, text};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn entry(id: &str, kind: ReferenceKind, title: &str, at: DateTime<Utc>) -> ReferenceEntry {
    ReferenceEntry {
        id: id.into(),
        kind,
        title: title.into(),
        body: json!({"summary": format!("{title}, explained"), "steps": [1, 2, 3]}),
        media_url: Some(format!("https://media.example.com/{id}.jpg")),
        updated_at: at,
    }
}

fn snapshot(version: u64, at: DateTime<Utc>, titles: &[&str]) -> ReferenceSnapshot {
    let kinds = [
        ReferenceKind::Exercise,
        ReferenceKind::ZoneFormula,
        ReferenceKind::Article,
    ];
    ReferenceSnapshot {
        version,
        published_at: at,
        entries: titles
            .iter()
            .enumerate()
            .map(|(i, title)| entry(&format!("e{i}"), kinds[i % 3], title, at))
            .collect(),
    }
}

/// Pseudo-random lower-case words (xorshift), which gzip cannot shrink much.
fn noise(seed: &mut u64, chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    while out.len() < chars {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let c = (*seed % 27) as u8;
        out.push(if c == 26 { ' ' } else { (b'a' + c) as char });
    }
    out
}

/// About `bytes` of JSON in entries of about 50 KB.
fn large_snapshot(version: u64, at: DateTime<Utc>, bytes: usize) -> ReferenceSnapshot {
    let mut seed = 0x9E37_79B9_7F4A_7C15;
    let entries = (0..bytes / 50_000)
        .map(|i| ReferenceEntry {
            id: format!("article-{i:03}"),
            kind: ReferenceKind::Article,
            title: noise(&mut seed, 60),
            body: json!({"text": noise(&mut seed, 50_000)}),
            media_url: None,
            updated_at: at,
        })
        .collect();
    ReferenceSnapshot {
        version,
        published_at: at,
        entries,
    }
}

async fn publish(ctx: &TestContext, snapshot: &ReferenceSnapshot) -> PublishOutcome {
    ctx.store
        .publish_reference(snapshot, ctx.now())
        .await
        .expect("publish")
}

async fn publish_ok(ctx: &TestContext, snapshot: &ReferenceSnapshot) {
    assert_eq!(
        publish(ctx, snapshot).await,
        PublishOutcome::Published {
            version: snapshot.version
        }
    );
}

/// `GET path` as alice on her phone, with extra request headers.
async fn get(ctx: &TestContext, path: &str, headers: &[(&'static str, &str)]) -> TestResponse {
    ctx.get_with_headers(path, &ctx.token("alice", "phone"), headers)
        .await
}

fn as_json(snapshot: &ReferenceSnapshot) -> Value {
    serde_json::to_value(snapshot).unwrap()
}

/// Asserts a 200 snapshot response carrying `expected`, cacheable forever.
fn assert_snapshot(response: &TestResponse, expected: &ReferenceSnapshot) {
    assert_eq!(response.status, StatusCode::OK, "{}", text(response));
    assert_eq!(response.json(), as_json(expected));
    assert_eq!(header(response, "cache-control"), Some(IMMUTABLE));
    assert_eq!(
        header(response, "etag"),
        Some(format!("\"{}\"", expected.version).as_str())
    );
    assert_eq!(header(response, "content-type"), Some("application/json"));
}

/// The chunk items of `version` on `shard`, read straight from the table.
async fn chunk_items(ctx: &TestContext, shard: u32, version: u64) -> usize {
    sort_keys(
        ctx,
        &format!("REF#{shard}"),
        &format!("SNAP#{version:020}#"),
    )
    .await
    .len()
}

#[tokio::test]
async fn published_versions_are_served_and_current_names_the_newest() {
    let ctx = TestContext::with_known_device("alice", "phone").await;
    let v1 = snapshot(1, ctx.now(), &["Squat", "Karvonen", "Tapering"]);
    let v2 = snapshot(2, ctx.now(), &["Squat", "Karvonen", "Tapering", "Lunge"]);
    publish_ok(&ctx, &v1).await;
    publish_ok(&ctx, &v2).await;

    let current = get(&ctx, "/reference/current", &[]).await;
    assert_eq!(current.status, StatusCode::OK, "{}", text(&current));
    let body = current.json();
    assert_eq!(body["version"], 2);
    assert_eq!(body["url"], "/reference/2");
    assert_eq!(body["server_timestamp"], json!(ctx.now()));
    assert_eq!(
        header(&current, "cache-control"),
        Some("public, max-age=300")
    );
    assert_eq!(current.ddb_requests(), 1, "one GetItem on one shard");

    for expected in [&v1, &v2] {
        let path = format!("/reference/{}", expected.version);
        // Clients that accept gzip get it; the harness inflates it.
        let zipped = get(&ctx, &path, &[("accept-encoding", "gzip")]).await;
        assert_snapshot(&zipped, expected);
        assert_eq!(header(&zipped, "content-encoding"), Some("gzip"));
        assert_eq!(zipped.ddb_requests(), 1, "one Query on one shard");
        let plain = get(&ctx, &path, &[]).await;
        assert_snapshot(&plain, expected);
        assert_eq!(header(&plain, "content-encoding"), None);
        assert_eq!(plain.ddb_requests(), 1);
    }
}

#[tokio::test]
async fn if_none_match_gets_304_without_reading_storage() {
    let ctx = TestContext::with_known_device("alice", "phone").await;
    publish_ok(&ctx, &snapshot(1, ctx.now(), &["Squat"])).await;
    let v2 = snapshot(2, ctx.now(), &["Squat", "Lunge"]);
    publish_ok(&ctx, &v2).await;

    for tag in ["\"2\"", "W/\"2\"", "\"1\", \"2\"", "*"] {
        let response = get(&ctx, "/reference/2", &[("if-none-match", tag)]).await;
        assert_eq!(response.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert!(response.bytes.is_empty(), "{tag}: {}", text(&response));
        assert_eq!(header(&response, "etag"), Some("\"2\""));
        assert_eq!(header(&response, "cache-control"), Some(IMMUTABLE));
        assert_eq!(response.ddb_requests(), 0, "{tag}");
    }
    // Another version's tag is no match: the full snapshot comes back.
    let response = get(&ctx, "/reference/2", &[("if-none-match", "\"1\"")]).await;
    assert_snapshot(&response, &v2);
}

#[tokio::test]
async fn nothing_published_and_unknown_versions_are_404() {
    let ctx = TestContext::new().await;
    for path in ["/reference/current", "/reference/1"] {
        let response = get(&ctx, path, &[]).await;
        expect_error(
            &response,
            path,
            StatusCode::NOT_FOUND,
            "reference_not_found",
            Some("version"),
        );
        assert!(response.ddb_requests() <= 2, "{path}");
    }
    publish_ok(&ctx, &snapshot(1, ctx.now(), &["Squat"])).await;
    for path in ["/reference/2", "/reference/18446744073709551615"] {
        let response = get(&ctx, path, &[]).await;
        expect_error(
            &response,
            path,
            StatusCode::NOT_FOUND,
            "reference_not_found",
            Some("version"),
        );
        // An eventually consistent read, then one strongly consistent retry.
        assert_eq!(response.ddb_requests(), 2, "{path}");
    }
}

#[tokio::test]
async fn versions_that_are_not_current_or_positive_integers_are_400() {
    let ctx = TestContext::with_known_device("alice", "phone").await;
    publish_ok(&ctx, &snapshot(1, ctx.now(), &["Squat"])).await;
    for version in [
        "abc",
        "0",
        "01",
        "-1",
        "1.0",
        "CURRENT",
        "99999999999999999999",
    ] {
        let response = get(&ctx, &format!("/reference/{version}"), &[]).await;
        expect_error(
            &response,
            version,
            StatusCode::BAD_REQUEST,
            "invalid_format",
            Some("version"),
        );
        assert_eq!(response.ddb_requests(), 0, "{version}");
    }
    // Any user may read, but only with a valid token.
    let anonymous = ctx.send(get_request("/reference/current", None, &[])).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let bob = ctx.token("bob", "tablet");
    let response = ctx.get("/reference/1", &bob, &[]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
}

#[tokio::test]
async fn stale_and_conflicting_publications_are_refused_and_retries_are_no_ops() {
    let ctx = TestContext::new().await;
    let v1 = snapshot(1, ctx.now(), &["Squat"]);
    let v2 = snapshot(2, ctx.now(), &["Squat", "Lunge"]);
    publish_ok(&ctx, &v1).await;
    publish_ok(&ctx, &v2).await;

    // An older version, with new content or not yet seen: refused.
    let other_v1 = snapshot(1, ctx.now(), &["Deadlift"]);
    assert_eq!(
        publish(&ctx, &other_v1).await,
        PublishOutcome::VersionConflict { version: 1 }
    );
    let mut skipped = snapshot(1, ctx.now(), &["Deadlift"]);
    skipped.version = 2;
    assert_eq!(
        publish(&ctx, &skipped).await,
        PublishOutcome::VersionConflict { version: 2 }
    );
    // A version below the newest that was never published: stale.
    let v3 = snapshot(3, ctx.now(), &["Squat", "Lunge", "Row"]);
    let v5 = snapshot(5, ctx.now(), &["Squat", "Lunge", "Row", "Plank"]);
    publish_ok(&ctx, &v5).await;
    assert_eq!(
        publish(&ctx, &v3).await,
        PublishOutcome::Stale {
            version: 3,
            latest: 5
        }
    );

    // The same content again (even with another published_at): nothing changes.
    let before = ctx.counter.total();
    assert_eq!(
        publish(&ctx, &v2).await,
        PublishOutcome::AlreadyPublished { version: 2 }
    );
    assert_eq!(
        ctx.counter.total() - before,
        1,
        "only the claim transaction"
    );
    let mut v5_again = v5.clone();
    v5_again.published_at = ctx.now() - chrono::Duration::hours(1);
    assert_eq!(
        publish(&ctx, &v5_again).await,
        PublishOutcome::AlreadyPublished { version: 5 }
    );

    let current = get(&ctx, "/reference/current", &[]).await;
    assert_eq!(current.json()["version"], 5);
    assert_snapshot(&get(&ctx, "/reference/1", &[]).await, &v1);
    assert_snapshot(&get(&ctx, "/reference/2", &[]).await, &v2);
    assert_snapshot(&get(&ctx, "/reference/5", &[]).await, &v5);
    expect_error(
        &get(&ctx, "/reference/3", &[]).await,
        "/reference/3",
        StatusCode::NOT_FOUND,
        "reference_not_found",
        Some("version"),
    );
}

#[tokio::test]
async fn every_shard_holds_every_version_and_the_current_pointer() {
    let ctx = TestContext::new().await;
    let v1 = snapshot(1, ctx.now(), &["Squat"]);
    let v2 = snapshot(2, ctx.now(), &["Squat", "Lunge"]);
    publish_ok(&ctx, &v1).await;
    publish_ok(&ctx, &v2).await;
    for shard in 0..REFERENCE_SHARDS {
        assert_eq!(
            ctx.store.reference_current(shard).await.unwrap(),
            Some(2),
            "shard {shard}"
        );
        for expected in [&v1, &v2] {
            let stored = ctx
                .store
                .reference_snapshot(expected.version, shard)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("v{} on shard {shard}", expected.version));
            let json: Value = serde_json::from_slice(&gunzip(&stored)).unwrap();
            assert_eq!(json, as_json(expected), "shard {shard}");
        }
    }
    assert_eq!(ctx.store.reference_snapshot(3, 0).await.unwrap(), None);
}

#[tokio::test]
async fn a_large_snapshot_is_chunked_and_round_trips() {
    let ctx = TestContext::new().await;
    let big = large_snapshot(1, ctx.now(), 1_500_000);
    let json_bytes = serde_json::to_vec(&big).unwrap().len();
    assert!(json_bytes > 1_400_000, "{json_bytes}");
    let before = ctx.counter.by_operation();
    publish_ok(&ctx, &big).await;
    let after = ctx.counter.by_operation();
    let delta = |op: &str| after.get(op).unwrap_or(&0) - before.get(op).unwrap_or(&0);
    println!(
        "publish of {json_bytes} bytes of JSON: {} BatchWriteItem, {} TransactWriteItems",
        delta("BatchWriteItem"),
        delta("TransactWriteItems")
    );

    let stored = ctx.store.reference_snapshot(1, 0).await.unwrap().unwrap();
    assert!(
        stored.len() > 400 * 1024,
        "gzip cannot shrink it under one item: {} bytes",
        stored.len()
    );
    for shard in 0..REFERENCE_SHARDS {
        let chunks = chunk_items(&ctx, shard, 1).await;
        assert!(chunks >= 2, "shard {shard}: {chunks} chunks");
        assert_eq!(chunks, stored.len().div_ceil(350 * 1024), "shard {shard}");
    }

    let zipped = get(&ctx, "/reference/1", &[("accept-encoding", "gzip")]).await;
    assert_snapshot(&zipped, &big);
    let plain = get(&ctx, "/reference/1", &[]).await;
    assert_snapshot(&plain, &big);
    println!(
        "GET /reference/1 of {} gzip'd bytes: {} DynamoDB requests",
        stored.len(),
        zipped.ddb_requests()
    );
    // Query pages are at most 1 MB: one request per started MB.
    assert!(
        zipped.ddb_requests() <= stored.len().div_ceil(1_000_000) as u64 + 1,
        "{}",
        zipped.ddb_requests()
    );
}

#[tokio::test]
async fn invalid_snapshots_are_refused_naming_the_field_and_store_nothing() {
    let ctx = TestContext::new().await;
    let mut bad = snapshot(1, ctx.now(), &["a", "b", "c", "d", "e"]);
    bad.entries[3].id = "Not An Id".into();
    let cases: Vec<(ReferenceSnapshot, &str, FieldErrorCode)> = vec![
        (bad, "entries[3].id", FieldErrorCode::InvalidFormat),
        (
            {
                let mut s = snapshot(1, ctx.now(), &["a", "b"]);
                s.entries[1].media_url = Some("http://media.example.com/x.jpg".into());
                s
            },
            "entries[1].media_url",
            FieldErrorCode::InvalidFormat,
        ),
        (
            {
                let mut s = snapshot(1, ctx.now(), &["a", "b", "c"]);
                s.entries[2].id = "e0".into();
                s
            },
            "entries[2].id",
            FieldErrorCode::InvalidValue,
        ),
        (
            {
                let mut s = snapshot(1, ctx.now(), &["a"]);
                s.entries[0].body = json!("not an object");
                s
            },
            "entries[0].body",
            FieldErrorCode::InvalidType,
        ),
        (
            snapshot(0, ctx.now(), &["a"]),
            "version",
            FieldErrorCode::OutOfRange,
        ),
        (
            large_snapshot(1, ctx.now(), 4_500_000),
            "entries",
            FieldErrorCode::TooLong,
        ),
    ];
    for (snapshot, field, code) in cases {
        let before = ctx.counter.total();
        match publish(&ctx, &snapshot).await {
            PublishOutcome::Invalid(e) => {
                assert_eq!((e.field.as_str(), e.code), (field, code), "{e:?}")
            }
            other => panic!("{field}: {other:?}"),
        }
        assert_eq!(ctx.counter.total(), before, "{field}: nothing written");
    }
    expect_error(
        &get(&ctx, "/reference/current", &[]).await,
        "/reference/current",
        StatusCode::NOT_FOUND,
        "reference_not_found",
        Some("version"),
    );
}

#[tokio::test]
async fn an_interrupted_publication_is_finished_by_publishing_it_again() {
    let ctx = TestContext::new().await;
    let v1 = snapshot(1, ctx.now(), &["Squat"]);
    let v2 = large_snapshot(2, ctx.now(), 800_000);
    publish_ok(&ctx, &v1).await;
    publish_ok(&ctx, &v2).await;

    // Rewind to "v2 claimed, chunks partly written, pointers not moved".
    let client = ctx.store.client();
    let key = |pk: String, sk: String| {
        std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk)),
            ("sk".to_owned(), AttributeValue::S(sk)),
        ])
    };
    client
        .update_item()
        .table_name(&ctx.table)
        .set_key(Some(key("REF#CTL".into(), format!("PUB#{:020}", 2))))
        .update_expression("SET #state = :writing")
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":writing", AttributeValue::S("writing".into()))
        .send()
        .await
        .unwrap();
    for shard in 0..REFERENCE_SHARDS {
        client
            .update_item()
            .table_name(&ctx.table)
            .set_key(Some(key(format!("REF#{shard}"), "CURRENT".into())))
            .update_expression("SET version = :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
    }
    client
        .delete_item()
        .table_name(&ctx.table)
        .set_key(Some(key("REF#3".into(), format!("SNAP#{:020}#0001", 2))))
        .send()
        .await
        .unwrap();
    assert_eq!(ctx.store.reference_snapshot(2, 3).await.unwrap(), None);
    assert_eq!(
        get(&ctx, "/reference/current", &[]).await.json()["version"],
        1
    );

    assert_eq!(
        publish(&ctx, &v2).await,
        PublishOutcome::AlreadyPublished { version: 2 }
    );
    for shard in 0..REFERENCE_SHARDS {
        assert_eq!(ctx.store.reference_current(shard).await.unwrap(), Some(2));
        assert!(
            ctx.store
                .reference_snapshot(2, shard)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_snapshot(&get(&ctx, "/reference/2", &[]).await, &v2);
    // Finished now: another retry is a single request.
    let before = ctx.counter.total();
    assert_eq!(
        publish(&ctx, &v2).await,
        PublishOutcome::AlreadyPublished { version: 2 }
    );
    assert_eq!(ctx.counter.total() - before, 1);
}

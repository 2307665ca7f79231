//! PRD 7.1: large GPS tracks are stored apart from the activity, chunked under
//! DynamoDB's item limit, and fetched on demand from
//! `GET /sync/tracks/{activity_id}`: binary, cacheable by ETag and resumable
//! with `Range`.

use http::StatusCode;
use sync_core::store::TrackStore;
use trainsync_protocol::domain::UserId;
use trainsync_tests::{TestContext, TestResponse};
use uuid::Uuid;

use crate::helpers::{expect_header, sort_keys, text};

const ALICE: &str = "alice";
const BOB: &str = "bob";
const CONTENT_TYPE: &str = "application/vnd.trainsync.track";
/// Big enough for three chunks of 350 KiB.
const LARGE: usize = 1_000_000;

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("user id")
}

/// `len` pseudo-random (incompressible) bytes, different for each `seed`.
fn blob(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn put(ctx: &TestContext, owner: &str, activity: Uuid, bytes: &[u8]) {
    ctx.store
        .put_track(&user(owner), &activity.to_string(), bytes, ctx.now())
        .await
        .expect("put_track");
}

/// `GET /sync/tracks/{id}` with extra request headers.
async fn get_track(
    ctx: &TestContext,
    token: &str,
    id: &str,
    headers: &[(&'static str, &str)],
) -> TestResponse {
    ctx.get_with_headers(&format!("/sync/tracks/{id}"), token, headers)
        .await
}

/// Sort keys of every stored item of the user's tracks, read straight from the table.
async fn track_items(ctx: &TestContext, owner: &str) -> Vec<String> {
    sort_keys(ctx, &format!("USER#{owner}"), "TRK#").await
}

#[tokio::test]
async fn a_large_track_is_stored_in_chunks_and_served_whole() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4();
    let bytes = blob(LARGE, 1);
    let info = ctx
        .store
        .put_track(&user(ALICE), &activity.to_string(), &bytes, ctx.now())
        .await
        .expect("put_track");
    assert_eq!(info.bytes, LARGE as u64);
    assert_eq!(info.chunks, 3);
    assert_eq!(info.sha256.len(), 64);
    assert_eq!(
        track_items(&ctx, ALICE).await.len(),
        4,
        "3 chunks + manifest"
    );
    let stored = ctx
        .store
        .track(&user(ALICE), &activity.to_string())
        .await
        .expect("track")
        .expect("stored");
    assert_eq!(stored.info, info);
    assert!(stored.bytes == bytes);

    let token = ctx.token(ALICE, "phone");
    let response = get_track(
        &ctx,
        &token,
        &activity.to_string(),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
    assert!(response.bytes == bytes, "the body is the stored bytes");
    assert_eq!(expect_header(&response, "content-type"), CONTENT_TYPE);
    assert!(response.headers.get("content-encoding").is_none());
    assert_eq!(expect_header(&response, "accept-ranges"), "bytes");
    assert_eq!(
        expect_header(&response, "etag"),
        format!("\"{}\"", info.sha256)
    );
    assert_eq!(
        expect_header(&response, "cache-control"),
        "private, max-age=86400"
    );
    assert!(response.headers.get("content-range").is_none());
    // The manifest, then the three chunks in one or two Query pages.
    let requests = response.ddb_requests();
    eprintln!("1 MB track read: {requests} DynamoDB requests");
    assert!((2..=4).contains(&requests), "{requests}");

    // The activity id is a UUID in any spelling.
    let upper = get_track(&ctx, &token, &activity.to_string().to_uppercase(), &[]).await;
    assert_eq!(upper.status, StatusCode::OK);
    assert!(upper.bytes == bytes);
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_a_range() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4().to_string();
    let bytes = blob(LARGE, 2);
    put(&ctx, ALICE, activity.parse().unwrap(), &bytes).await;
    let token = ctx.token(ALICE, "phone");

    let first = get_track(&ctx, &token, &activity, &[("range", "bytes=0-99999")]).await;
    assert_eq!(
        first.status,
        StatusCode::PARTIAL_CONTENT,
        "{}",
        text(&first)
    );
    assert_eq!(
        expect_header(&first, "content-range"),
        format!("bytes 0-99999/{LARGE}")
    );
    assert_eq!(first.bytes.len(), 100_000);
    assert_eq!(first.ddb_requests(), 2, "manifest + the first chunk only");
    let etag = expect_header(&first, "etag").to_owned();

    let rest = get_track(
        &ctx,
        &token,
        &activity,
        &[("range", "bytes=100000-"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(rest.status, StatusCode::PARTIAL_CONTENT, "{}", text(&rest));
    assert_eq!(
        expect_header(&rest, "content-range"),
        format!("bytes 100000-{}/{LARGE}", LARGE - 1)
    );
    assert_eq!(expect_header(&rest, "content-type"), CONTENT_TYPE);
    let mut joined = first.bytes.clone();
    joined.extend_from_slice(&rest.bytes);
    assert!(joined == bytes, "the two parts make the whole track");

    // A range inside one later chunk reads only that chunk.
    let middle = get_track(&ctx, &token, &activity, &[("range", "bytes=800000-800009")]).await;
    assert_eq!(middle.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(middle.bytes, bytes[800_000..800_010]);
    assert_eq!(middle.ddb_requests(), 2);

    // A range across a chunk boundary.
    let boundary = 350 * 1024;
    let spec = format!("bytes={}-{}", boundary - 5, boundary + 4);
    let across = get_track(&ctx, &token, &activity, &[("range", &spec)]).await;
    assert_eq!(across.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(across.bytes, bytes[boundary - 5..boundary + 5]);

    // A range running past the end is cut at the end.
    let spec = format!("bytes={}-{}", LARGE - 10, LARGE + 100);
    let tail = get_track(&ctx, &token, &activity, &[("range", &spec)]).await;
    assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes, bytes[LARGE - 10..]);
    assert_eq!(
        expect_header(&tail, "content-range"),
        format!("bytes {}-{}/{LARGE}", LARGE - 10, LARGE - 1)
    );

    // Ranges the server ignores (RFC 9110 allows it): the whole track, 200.
    for ignored in ["bytes=-100", "bytes=5-1", "bytes=0-1,5-9", "pages=1-"] {
        let whole = get_track(&ctx, &token, &activity, &[("range", ignored)]).await;
        assert_eq!(whole.status, StatusCode::OK, "{ignored}");
        assert!(whole.bytes == bytes, "{ignored}");
    }
}

#[tokio::test]
async fn a_resume_after_the_track_was_replaced_gets_the_new_track_whole() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4();
    put(&ctx, ALICE, activity, &blob(LARGE, 3)).await;
    let token = ctx.token(ALICE, "phone");
    let first = get_track(
        &ctx,
        &token,
        &activity.to_string(),
        &[("range", "bytes=0-99")],
    )
    .await;
    let old_etag = expect_header(&first, "etag").to_owned();
    let replacement = blob(200_000, 4);
    put(&ctx, ALICE, activity, &replacement).await;

    let resumed = get_track(
        &ctx,
        &token,
        &activity.to_string(),
        &[("range", "bytes=100-"), ("if-range", &old_etag)],
    )
    .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", text(&resumed));
    assert!(resumed.bytes == replacement);
    assert_ne!(expect_header(&resumed, "etag"), old_etag);
    assert!(resumed.headers.get("content-range").is_none());
}

#[tokio::test]
async fn a_range_past_the_end_is_not_satisfiable() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4().to_string();
    put(&ctx, ALICE, activity.parse().unwrap(), &blob(LARGE, 5)).await;
    let token = ctx.token(ALICE, "phone");
    for spec in [format!("bytes={LARGE}-"), format!("bytes={}-", LARGE + 1)] {
        let response = get_track(&ctx, &token, &activity, &[("range", &spec)]).await;
        assert_eq!(
            response.status,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{spec}: {}",
            text(&response)
        );
        assert_eq!(expect_header(&response, "content-type"), "application/json");
        assert_eq!(
            expect_header(&response, "content-range"),
            format!("bytes */{LARGE}")
        );
        assert_eq!(response.error_code(), "out_of_range");
        assert_eq!(response.error_field().as_deref(), Some("range"));
        assert!(response.json()["server_timestamp"].is_string());
        assert_eq!(response.ddb_requests(), 1, "the manifest only");
    }
}

#[tokio::test]
async fn an_unknown_track_is_not_found() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let token = ctx.token(ALICE, "phone");
    let response = get_track(&ctx, &token, &Uuid::new_v4().to_string(), &[]).await;
    assert_eq!(
        response.status,
        StatusCode::NOT_FOUND,
        "{}",
        text(&response)
    );
    assert_eq!(expect_header(&response, "content-type"), "application/json");
    assert_eq!(response.error_code(), "track_not_found");
    assert_eq!(response.error_field().as_deref(), Some("activity_id"));
    assert_eq!(response.ddb_requests(), 1);
}

#[tokio::test]
async fn an_activity_id_that_is_not_a_uuid_is_a_bad_request() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let token = ctx.token(ALICE, "phone");
    for id in [
        "not-a-uuid",
        "123",
        "TRK%23x",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",
    ] {
        let response = get_track(&ctx, &token, id, &[]).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{id}: {}",
            text(&response)
        );
        assert_eq!(response.error_code(), "invalid_format", "{id}");
        assert_eq!(
            response.error_field().as_deref(),
            Some("activity_id"),
            "{id}"
        );
        assert_eq!(response.ddb_requests(), 0, "{id}");
    }
}

#[tokio::test]
async fn a_user_cannot_read_another_users_track() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4().to_string();
    let bytes = blob(10_000, 6);
    put(&ctx, ALICE, activity.parse().unwrap(), &bytes).await;
    let alice = get_track(&ctx, &ctx.token(ALICE, "phone"), &activity, &[]).await;
    assert_eq!(alice.status, StatusCode::OK);
    let etag = expect_header(&alice, "etag").to_owned();

    // Same device name, plain, ranged and conditional: always 404, never 403.
    let bob = ctx.token(BOB, "phone");
    for headers in [
        vec![],
        vec![("range", "bytes=0-")],
        vec![("if-none-match", etag.as_str())],
    ] {
        let response = get_track(&ctx, &bob, &activity, &headers).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{headers:?}");
        assert_eq!(response.error_code(), "track_not_found");
        assert!(!response.bytes.windows(16).any(|w| w == &bytes[..16]));
    }
    assert!(
        ctx.store
            .track(&user(BOB), &activity)
            .await
            .expect("track")
            .is_none()
    );
}

#[tokio::test]
async fn replacing_a_track_with_a_shorter_one_leaves_no_stale_chunks() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4();
    let id = activity.to_string();
    put(&ctx, ALICE, activity, &blob(LARGE, 7)).await;
    assert_eq!(track_items(&ctx, ALICE).await.len(), 4);

    let short = blob(1_000, 8);
    let info = ctx
        .store
        .put_track(&user(ALICE), &id, &short, ctx.now())
        .await
        .expect("replace");
    assert_eq!((info.bytes, info.chunks), (1_000, 1));
    let items = track_items(&ctx, ALICE).await;
    assert_eq!(
        items.len(),
        2,
        "manifest + one chunk, nothing left over: {items:?}"
    );

    let token = ctx.token(ALICE, "phone");
    let response = get_track(&ctx, &token, &id, &[]).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.bytes == short);
    let past = get_track(&ctx, &token, &id, &[("range", "bytes=1000-")]).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let stored = ctx.store.track(&user(ALICE), &id).await.unwrap().unwrap();
    assert!(stored.bytes == short);
}

#[tokio::test]
async fn concurrent_replacements_leave_one_whole_track() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4();
    let id = activity.to_string();
    put(&ctx, ALICE, activity, &blob(500_000, 9)).await;
    let (a, b) = (blob(LARGE, 10), blob(400_000, 11));
    let owner = user(ALICE);
    let (ra, rb) = tokio::join!(
        ctx.store.put_track(&owner, &id, &a, ctx.now()),
        ctx.store.put_track(&owner, &id, &b, ctx.now()),
    );
    let (ia, ib) = (ra.expect("a"), rb.expect("b"));
    let stored = ctx.store.track(&owner, &id).await.unwrap().unwrap();
    let winner = if stored.info == ia {
        (&a, ia)
    } else {
        (&b, ib)
    };
    assert!(stored.bytes == *winner.0, "one writer's track, whole");
    let items = track_items(&ctx, ALICE).await;
    assert_eq!(
        items.len(),
        1 + winner.1.chunks as usize,
        "only the winner's chunks remain: {items:?}"
    );
}

#[tokio::test]
async fn a_single_chunk_track_costs_two_requests_and_revalidates_in_one() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4();
    let id = activity.to_string();
    let bytes = blob(60_000, 12);
    put(&ctx, ALICE, activity, &bytes).await;
    let token = ctx.token(ALICE, "phone");

    let response = get_track(&ctx, &token, &id, &[]).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.bytes == bytes);
    assert_eq!(response.ddb_requests(), 2, "GetItem manifest + Query chunk");

    let etag = expect_header(&response, "etag").to_owned();
    let cached = get_track(&ctx, &token, &id, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.bytes.is_empty());
    assert_eq!(expect_header(&cached, "etag"), etag);
    assert_eq!(cached.ddb_requests(), 1, "the manifest only");

    let changed = get_track(&ctx, &token, &id, &[("if-none-match", "\"0000\"")]).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert!(changed.bytes == bytes);
}

#[tokio::test]
async fn storing_the_same_track_again_is_one_read() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4();
    let bytes = blob(LARGE, 13);
    let before = ctx.counter.total();
    put(&ctx, ALICE, activity, &bytes).await;
    let first_put = ctx.counter.total() - before;
    let before = ctx.counter.total();
    put(&ctx, ALICE, activity, &bytes).await;
    let again = ctx.counter.total() - before;
    eprintln!("1 MB put: {first_put} DynamoDB requests; same again: {again}");
    assert_eq!(
        first_put, 3,
        "GetItem manifest, BatchWriteItem chunks, PutItem manifest"
    );
    assert_eq!(again, 1, "GetItem manifest");
    assert_eq!(track_items(&ctx, ALICE).await.len(), 4);
}

#[tokio::test]
async fn an_empty_track_is_served_empty() {
    let ctx = TestContext::with_known_device(ALICE, "phone").await;
    let activity = Uuid::new_v4();
    let info = ctx
        .store
        .put_track(&user(ALICE), &activity.to_string(), &[], ctx.now())
        .await
        .expect("put_track");
    assert_eq!((info.bytes, info.chunks), (0, 0));
    let token = ctx.token(ALICE, "phone");
    let response = get_track(&ctx, &token, &activity.to_string(), &[]).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.bytes.is_empty());
    assert_eq!(response.ddb_requests(), 1);
    let ranged = get_track(
        &ctx,
        &token,
        &activity.to_string(),
        &[("range", "bytes=0-")],
    )
    .await;
    assert_eq!(ranged.status, StatusCode::RANGE_NOT_SATISFIABLE);
}

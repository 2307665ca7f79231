//! RS256 with a JWKS URL (production mode): keys fetched once and cached,
//! algorithms pinned, unknown keys and key-set outages handled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use sync_core::auth::{AuthError, Claims, Verifier};
use sync_core::config::AuthConfig;

const PRIVATE_KEY: &str = include_str!("../../fixtures/test-rsa-private.pem");
const JWKS: &str = include_str!("../../fixtures/test-jwks.json");

/// Serves the test key set on loopback, counting fetches.
async fn serve_jwks() -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { ([("content-type", "application/json")], JWKS) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fetches)
}

fn claims() -> Claims {
    let now = Utc::now();
    Claims {
        sub: "grace".into(),
        device_id: "phone".into(),
        iss: "https://issuer.example".into(),
        aud: "app-client".into(),
        exp: (now + Duration::hours(1)).timestamp(),
        iat: Some(now.timestamp()),
        nbf: None,
        sid: None,
    }
}

fn rs256(kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(
        &header,
        &claims(),
        &EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn verifier(url: &str) -> Verifier {
    Verifier::new(&AuthConfig::Rs256Jwks {
        jwks_url: url.into(),
        issuer: "https://issuer.example".into(),
        audience: "app-client".into(),
    })
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_key_set_fetched_once() {
    let (url, fetches) = serve_jwks().await;
    let verifier = verifier(&url);
    for _ in 0..3 {
        let caller = verifier
            .verify(Some(&format!("Bearer {}", rs256("test-key-1"))), Utc::now())
            .await
            .unwrap();
        assert_eq!(caller.user_id.as_str(), "grace");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the key set is cached");
}

#[tokio::test]
async fn other_algorithms_and_unknown_keys_are_refused() {
    let (url, _) = serve_jwks().await;
    let verifier = verifier(&url);
    // Algorithm confusion: an HS256 token "signed" with the public key material.
    let hs = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(JWKS.as_bytes()),
    )
    .unwrap();
    assert!(matches!(
        verifier
            .verify(Some(&format!("Bearer {hs}")), Utc::now())
            .await,
        Err(AuthError::Invalid(_))
    ));
    assert!(matches!(
        verifier
            .verify(
                Some(&format!("Bearer {}", rs256("rotated-away"))),
                Utc::now()
            )
            .await,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn an_unreachable_key_set_is_a_retryable_failure() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let result = verifier(&url)
        .verify(Some(&format!("Bearer {}", rs256("test-key-1"))), Utc::now())
        .await;
    assert!(
        matches!(result, Err(AuthError::KeysUnavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn access_tokens_issued_with_the_signing_key_verify_against_the_key_set() {
    use sync_core::auth::issuer::TokenIssuer;
    use sync_core::config::{Config, PushConfig, SigningKey};
    use trainsync_protocol::domain::{DeviceId, UserId};
    let (url, _) = serve_jwks().await;
    let mut config = Config {
        table_name: "t".into(),
        dynamodb_endpoint: None,
        region: None,
        auth: AuthConfig::Rs256Jwks {
            jwks_url: url.clone(),
            issuer: "https://issuer.example".into(),
            audience: "app-client".into(),
        },
        brain: false,
        signing_key: None,
        push: PushConfig::Off,
    };
    assert!(
        TokenIssuer::from_config(&config, None).unwrap().is_none(),
        "RS256 without a signing key issues nothing"
    );
    config.signing_key = Some(SigningKey::Pem {
        pem: "not a key".into(),
        kid: "test-key-1".into(),
    });
    assert!(TokenIssuer::from_config(&config, None).is_err());
    config.signing_key = Some(SigningKey::Pem {
        pem: PRIVATE_KEY.into(),
        kid: "test-key-1".into(),
    });
    let issuer = TokenIssuer::from_config(&config, None).unwrap().unwrap();
    let login = uuid::Uuid::new_v4();
    let (token, expires_at) = issuer
        .access_token(
            &UserId::parse("grace").unwrap(),
            &DeviceId::parse("phone").unwrap(),
            login,
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(expires_at > Utc::now() + Duration::hours(23));
    let caller = verifier(&url)
        .verify(Some(&format!("Bearer {token}")), Utc::now())
        .await
        .unwrap();
    assert_eq!(caller.device_id.as_str(), "phone");
    assert_eq!(caller.login, Some(login.to_string()));
}

/// Third-party identity providers put their own session ids in `sid`
/// (rarely UUIDs): the claim is opaque, never a reason to refuse the token.
#[tokio::test]
async fn an_identity_providers_opaque_sid_is_accepted() {
    let (url, _) = serve_jwks().await;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let claims = Claims {
        sid: Some("idp-session:3f9a/opaque".into()),
        ..claims()
    };
    let token = encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    let caller = verifier(&url)
        .verify(Some(&format!("Bearer {token}")), Utc::now())
        .await
        .expect("an opaque sid verifies");
    assert_eq!(caller.login.as_deref(), Some("idp-session:3f9a/opaque"));
}

/// After the key set's hour a failed refetch does not fail every request:
/// the keys held keep serving, and refetches stay throttled (at most one
/// per 30 s, failed or not) instead of hammering a struggling provider.
#[tokio::test]
async fn a_key_set_outage_after_the_cache_hour_serves_the_cached_keys() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let (counter, outage) = (fetches.clone(), down.clone());
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let failing = outage.load(Ordering::SeqCst);
            async move {
                if failing {
                    (
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        [("content-type", "text/plain")],
                        "down",
                    )
                } else {
                    (
                        http::StatusCode::OK,
                        [("content-type", "application/json")],
                        JWKS,
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let t0 = Utc::now();
    let long_lived = Claims {
        exp: (t0 + Duration::hours(5)).timestamp(),
        ..claims()
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let token = encode(
        &header,
        &long_lived,
        &EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let verifier = verifier(&url);
    let verify_at = |at| verifier.verify(Some(&bearer), at);

    verify_at(t0).await.expect("keys fetched");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    down.store(true, Ordering::SeqCst);
    let stale = t0 + Duration::hours(2);
    verify_at(stale)
        .await
        .expect("a failed refetch serves the cached keys");
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one refetch was tried");
    verify_at(stale + Duration::seconds(1))
        .await
        .expect("still served");
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "no refetch within 30 s of the failed one"
    );
    verify_at(stale + Duration::seconds(31))
        .await
        .expect("still served");
    assert_eq!(fetches.load(Ordering::SeqCst), 3, "then one more try");

    // A verifier that never got the keys reports the outage as retryable.
    let cold = self::verifier(&url);
    assert!(matches!(
        cold.verify(Some(&bearer), stale).await,
        Err(AuthError::KeysUnavailable(_))
    ));
}

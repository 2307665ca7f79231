//! RS256 with a JWKS URL (production mode): keys fetched once and cached,
//! algorithms pinned, unknown keys and key-set outages handled.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
        TokenIssuer::from_config(&config).unwrap().is_none(),
        "RS256 without a signing key issues nothing"
    );
    config.signing_key = Some(SigningKey {
        pem: "not a key".into(),
        kid: "test-key-1".into(),
    });
    assert!(TokenIssuer::from_config(&config).is_err());
    config.signing_key = Some(SigningKey {
        pem: PRIVATE_KEY.into(),
        kid: "test-key-1".into(),
    });
    let issuer = TokenIssuer::from_config(&config).unwrap().unwrap();
    let login = uuid::Uuid::new_v4();
    let (token, expires_at) = issuer
        .access_token(
            &UserId::parse("grace").unwrap(),
            &DeviceId::parse("phone").unwrap(),
            login,
            Utc::now(),
        )
        .unwrap();
    assert!(expires_at > Utc::now() + Duration::hours(23));
    let caller = verifier(&url)
        .verify(Some(&format!("Bearer {token}")), Utc::now())
        .await
        .unwrap();
    assert_eq!(caller.device_id.as_str(), "phone");
    assert_eq!(caller.login, Some(login));
}

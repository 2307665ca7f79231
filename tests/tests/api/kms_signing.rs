//! Access tokens signed by an asymmetric KMS key, as the deployed refresh
//! function signs them (`kms:Sign`; the private key never leaves KMS),
//! against moto's KMS: an RSA_2048 SIGN_VERIFY key, its public half
//! (GetPublicKey, DER) published in a JWKS the project's verifier fetches.
//!
//! moto runs as `python3 -m moto.server`, one server per test on a free
//! port. `scripts/test` installs it (`pip install 'moto[server]'`); without
//! it these tests print why and pass, except under CI, where they fail.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, decode_header};
use sync_core::auth::Verifier;
use sync_core::auth::issuer::TokenIssuer;
use sync_core::config::{AuthConfig, Config, ConfigError};
use trainsync_protocol::domain::{DeviceId, UserId};
use trainsync_tests::{AUDIENCE, ISSUER, TestContext};

/// The `kid` the test JWKS lists the KMS key's public half under.
const KID: &str = "kms-2026";

/// A moto server, stopped when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto on a free loopback port and waits until it listens; `None`
/// (after saying why) when moto is not installed, outside CI.
fn start_moto() -> Option<Moto> {
    let installed = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        let reason = "moto is not installed: python3 -m pip install 'moto[server]' \
                      (scripts/test installs it)";
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("skipped: {reason}");
        return None;
    }
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        // moto logs every request; nothing reads it.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m moto.server starts");
    let mut moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + StdDuration::from_secs(60);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto exited before listening on {port}: {status}");
        }
        assert!(Instant::now() < deadline, "moto did not listen on {port}");
        std::thread::sleep(StdDuration::from_millis(100));
    }
    Some(moto)
}

/// A KMS client on moto (any credentials do).
fn kms_client(moto: &Moto) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::new("moto", "moto", None, None, "moto"))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Creates the signing key the template expects (RSA_2048, SIGN_VERIFY): its ARN.
async fn create_signing_key(kms: &aws_sdk_kms::Client) -> String {
    let created = kms
        .create_key()
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::SignVerify)
        .description("trainsync access tokens")
        .send()
        .await
        .expect("CreateKey");
    let metadata = created.key_metadata().expect("key metadata");
    metadata.arn().expect("key ARN").to_owned()
}

/// The key's public half as a JWK under [`KID`]: GetPublicKey's DER
/// (SubjectPublicKeyInfo) → PEM → `DecodingKey` → JWK.
async fn public_jwk(kms: &aws_sdk_kms::Client, key: &str) -> Jwk {
    let public = kms
        .get_public_key()
        .key_id(key)
        .send()
        .await
        .expect("GetPublicKey");
    let der = public.public_key().expect("a public key").as_ref();
    let base64 = STANDARD.encode(der);
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA public key");
    let mut jwk = Jwk::from_decoding_key(&key, Some(Algorithm::RS256)).expect("a JWK");
    jwk.common.key_id = Some(KID.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk
}

/// Serves `keys` as a JWKS on loopback: its URL.
async fn serve_jwks(keys: JwkSet) -> String {
    let body = serde_json::to_string(&keys).expect("JWKS JSON");
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || async move { ([("content-type", "application/json")], body) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The deployed refresh function's configuration: RS256 against `jwks_url`,
/// signing with KMS key `key`.
fn deployed_config(jwks_url: &str, key: &str) -> Config {
    let environment = [
        ("TABLE_NAME", "unused"),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
        ("JWKS_URL", jwks_url),
        ("JWT_SIGNING_KMS_KEY_ID", key),
        ("JWT_SIGNING_KID", KID),
    ];
    Config::from_lookup(|name| {
        environment
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("the deployed configuration")
}

/// An issuer signing with KMS key `key`, and the verifier of the JWKS at `jwks_url`.
fn kms_issuer_and_verifier(
    kms: &aws_sdk_kms::Client,
    jwks_url: &str,
    key: &str,
) -> (TokenIssuer, Verifier) {
    let config = deployed_config(jwks_url, key);
    let issuer = TokenIssuer::from_config(&config, Some(kms.clone()))
        .expect("a KMS issuer")
        .expect("RS256 with a signing key issues");
    (issuer, Verifier::new(&config.auth))
}

#[tokio::test]
async fn a_token_signed_in_kms_verifies_against_the_keys_public_half_in_the_jwks() {
    let Some(moto) = start_moto() else { return };
    let kms = kms_client(&moto);
    let key = create_signing_key(&kms).await;
    let jwks_url = serve_jwks(JwkSet {
        keys: vec![public_jwk(&kms, &key).await],
    })
    .await;
    let (issuer, verifier) = kms_issuer_and_verifier(&kms, &jwks_url, &key);

    let now = chrono::Utc::now();
    let login = uuid::Uuid::new_v4();
    let (token, expires_at) = issuer
        .access_token(
            &UserId::parse("grace").unwrap(),
            &DeviceId::parse("phone").unwrap(),
            login,
            now,
        )
        .await
        .expect("KMS signs");
    let header = decode_header(&token).expect("a JWT header");
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::RS256, Some(KID))
    );
    assert_eq!(expires_at, now + chrono::Duration::hours(24));
    let caller = verifier
        .verify(Some(&format!("Bearer {token}")), now)
        .await
        .expect("the verifier accepts the KMS signature with the published key");
    assert_eq!(
        (
            caller.user_id.as_str(),
            caller.device_id.as_str(),
            caller.login
        ),
        ("grace", "phone", Some(login.to_string()))
    );

    // The signature is over this header and these claims: another key's
    // public half under the same kid refuses it.
    let other = create_signing_key(&kms).await;
    let other_jwks = serve_jwks(JwkSet {
        keys: vec![public_jwk(&kms, &other).await],
    })
    .await;
    let (_, other_verifier) = kms_issuer_and_verifier(&kms, &other_jwks, &other);
    assert!(
        other_verifier
            .verify(Some(&format!("Bearer {token}")), now)
            .await
            .is_err(),
        "a signature by another key is refused"
    );
}

/// The whole deployed path: a login and `POST /auth/refresh` through the
/// real handler sign with KMS, and the API accepts both access tokens.
#[tokio::test]
async fn the_refresh_handler_answers_kms_signed_tokens_the_api_accepts() {
    let Some(moto) = start_moto() else { return };
    let kms = kms_client(&moto);
    let key = create_signing_key(&kms).await;
    let jwks_url = serve_jwks(JwkSet {
        keys: vec![public_jwk(&kms, &key).await],
    })
    .await;
    let (issuer, verifier) = kms_issuer_and_verifier(&kms, &jwks_url, &key);
    let mut ctx = TestContext::new().await;
    ctx.state.verifier = Arc::new(verifier);
    ctx.state.tokens = Some(Arc::new(issuer));

    let first = ctx.login("grace", "phone").await;
    let listed = ctx.get("/devices", &first.access_token, &[]).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.json());

    let refreshed = ctx.refresh(&first.refresh_token).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.json());
    let access = refreshed.json()["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    assert_eq!(decode_header(&access).unwrap().kid.as_deref(), Some(KID));
    let listed = ctx.get("/devices", &access, &[]).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.json());
}

/// KMS refusing to sign (here: no such key) is the server's fault: a 500
/// whose body names nothing, while the error the log prints names the
/// key and KMS's reason.
#[tokio::test]
async fn a_kms_refusal_is_a_generic_500_with_the_cause_in_the_log_only() {
    let Some(moto) = start_moto() else { return };
    let kms = kms_client(&moto);
    let key = create_signing_key(&kms).await;
    let jwks_url = serve_jwks(JwkSet {
        keys: vec![public_jwk(&kms, &key).await],
    })
    .await;
    let (issuer, verifier) = kms_issuer_and_verifier(&kms, &jwks_url, &key);
    let mut ctx = TestContext::new().await;
    ctx.state.verifier = Arc::new(verifier);
    ctx.state.tokens = Some(Arc::new(issuer));
    let pair = ctx.login("grace", "phone").await;

    let missing = "alias/trainsync-no-such-key";
    let (broken, _) = kms_issuer_and_verifier(&kms, &jwks_url, missing);
    ctx.state.tokens = Some(Arc::new(broken));
    let refused = ctx.refresh(&pair.refresh_token).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(refused.error_code(), "internal_error");
    let body = String::from_utf8_lossy(&refused.bytes).to_string();
    for detail in [missing, "KMS", "NotFound"] {
        assert!(!body.contains(detail), "the body leaks {detail}: {body}");
    }

    let logged = ctx
        .state
        .tokens()
        .login(
            &UserId::parse("grace").unwrap(),
            &DeviceId::parse("tablet").unwrap(),
        )
        .await
        .expect_err("no key, no token")
        .to_string();
    assert!(
        logged.contains(missing) && logged.contains("NotFoundException"),
        "the logged error names the key and the cause: {logged}"
    );
}

/// A KMS key signs through a KMS client only: a program that offers none
/// (the test harness, tooling signing in memory) refuses it at start-up
/// instead of failing every token.
#[test]
fn a_kms_key_without_a_kms_client_is_refused_at_start_up() {
    let config = deployed_config("https://issuer.example/jwks.json", "alias/k");
    assert!(matches!(config.auth, AuthConfig::Rs256Jwks { .. }));
    assert!(matches!(
        TokenIssuer::from_config(&config, None),
        Err(ConfigError::Invalid {
            var: "JWT_SIGNING_KMS_KEY_ID",
            ..
        })
    ));
}

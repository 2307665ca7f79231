//! The local defaults, in one place: every local tool (gateway, CLI, tests)
//! reads its configuration through [`lookup`], which falls back to these for
//! anything the environment leaves unset or empty.

use chrono::{DateTime, Utc};
use sync_core::config::{AuthConfig, Config, ConfigError};

/// Local table name (`TABLE_NAME`).
pub const TABLE_NAME: &str = "trainsync-local";
/// LOCAL DEVELOPMENT ONLY HS256 secret (`JWT_SECRET`); never use it in a deployment.
pub const JWT_SECRET: &str = "LOCAL-DEV-ONLY-trainsync-hs256-secret-never-use-in-production";
/// Local token issuer (`JWT_ISSUER`).
pub const JWT_ISSUER: &str = "trainsync-local";
/// Local token audience (`JWT_AUDIENCE`).
pub const JWT_AUDIENCE: &str = "trainsync";
/// Local region (`AWS_REGION`).
pub const AWS_REGION: &str = "us-east-1";
/// User the local gateway prints a token for.
pub const DEV_USER: &str = "dev-user";
/// Device the local gateway prints a token for.
pub const DEV_DEVICE: &str = "dev-device";
/// Lifetime of the token the local gateway prints (hours).
pub const DEV_TOKEN_TTL_HOURS: i64 = 24;

/// The local default of variable `name`, if it has one. `JWT_SECRET` has
/// none when `JWKS_URL` is set (exactly one of them may be set).
pub fn default_for(name: &str, env: &impl Fn(&str) -> Option<String>) -> Option<&'static str> {
    match name {
        "TABLE_NAME" => Some(TABLE_NAME),
        "JWT_SECRET" if set(env, "JWKS_URL").is_none() => Some(JWT_SECRET),
        "JWT_ISSUER" => Some(JWT_ISSUER),
        "JWT_AUDIENCE" => Some(JWT_AUDIENCE),
        "AWS_REGION" => Some(AWS_REGION),
        _ => None,
    }
}

fn set(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|value| !value.trim().is_empty())
}

/// Wraps `env` so unset or empty variables get their local default.
pub fn lookup(env: impl Fn(&str) -> Option<String>) -> impl Fn(&str) -> Option<String> {
    move |name| set(&env, name).or_else(|| default_for(name, &env).map(str::to_owned))
}

/// The process environment as a lookup function.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Configuration from the process environment plus the local defaults.
pub fn from_env() -> Result<Config, ConfigError> {
    Config::from_lookup(lookup(process_env))
}

/// Like [`from_env`], with `DYNAMODB_ENDPOINT` forced to `endpoint`
/// (e.g. a DynamoDB Local this process started).
pub fn from_env_with_endpoint(endpoint: &str) -> Result<Config, ConfigError> {
    let env = lookup(process_env);
    Config::from_lookup(move |name| match name {
        "DYNAMODB_ENDPOINT" => Some(endpoint.to_owned()),
        _ => env(name),
    })
}

/// Why a development token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    /// The configuration verifies RS256 tokens from a JWKS, which this tool cannot sign.
    #[error(
        "dev tokens are HS256: JWKS_URL is set ({jwks_url}), so tokens come from the identity provider; unset JWKS_URL to use JWT_SECRET"
    )]
    NotHs256 {
        /// The configured key set.
        jwks_url: String,
    },
    /// The lifetime is not positive or too large.
    #[error("token lifetime must be between 1 and {max} hours, got {hours}")]
    BadTtl {
        /// What was asked for.
        hours: i64,
        /// Largest accepted.
        max: i64,
    },
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(#[from] sync_core::auth::issuer::MintError),
}

/// Longest dev token lifetime accepted (hours): one year.
pub const MAX_DEV_TOKEN_TTL_HOURS: i64 = 24 * 366;

/// Mints an HS256 token for `user_id` / `device_id` valid `ttl_hours` from
/// `now`, signed with the configuration's secret, issuer and audience.
pub fn dev_token(
    config: &Config,
    user_id: &str,
    device_id: &str,
    ttl_hours: i64,
    now: DateTime<Utc>,
) -> Result<String, DevTokenError> {
    if !(1..=MAX_DEV_TOKEN_TTL_HOURS).contains(&ttl_hours) {
        return Err(DevTokenError::BadTtl {
            hours: ttl_hours,
            max: MAX_DEV_TOKEN_TTL_HOURS,
        });
    }
    match &config.auth {
        AuthConfig::Hs256 {
            secret,
            issuer,
            audience,
        } => Ok(sync_core::auth::mint_hs256_token(
            secret,
            issuer,
            audience,
            user_id,
            device_id,
            now,
            chrono::Duration::hours(ttl_hours),
        )?),
        AuthConfig::Rs256Jwks { jwks_url, .. } => Err(DevTokenError::NotHs256 {
            jwks_url: jwks_url.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn empty_environment_gives_the_local_defaults() {
        let config = Config::from_lookup(lookup(env(&[]))).expect("defaults are a valid config");
        assert_eq!(config.table_name, TABLE_NAME);
        assert_eq!(config.region.as_deref(), Some(AWS_REGION));
        assert_eq!(config.dynamodb_endpoint, None);
        match config.auth {
            AuthConfig::Hs256 {
                secret,
                issuer,
                audience,
            } => {
                assert_eq!(secret, JWT_SECRET);
                assert_eq!(issuer, JWT_ISSUER);
                assert_eq!(audience, JWT_AUDIENCE);
            }
            other => panic!("expected HS256, got {other:?}"),
        }
    }

    #[test]
    fn environment_wins_and_empty_counts_as_unset() {
        let config = Config::from_lookup(lookup(env(&[
            ("TABLE_NAME", "mine"),
            ("JWT_ISSUER", ""),
            ("DYNAMODB_ENDPOINT", "http://127.0.0.1:9"),
        ])))
        .expect("valid config");
        assert_eq!(config.table_name, "mine");
        assert_eq!(
            config.dynamodb_endpoint.as_deref(),
            Some("http://127.0.0.1:9")
        );
        match config.auth {
            AuthConfig::Hs256 { issuer, .. } => assert_eq!(issuer, JWT_ISSUER),
            other => panic!("expected HS256, got {other:?}"),
        }
    }

    #[test]
    fn jwks_url_suppresses_the_default_secret() {
        let config = Config::from_lookup(lookup(env(&[(
            "JWKS_URL",
            "https://example.com/.well-known/jwks.json",
        )])))
        .expect("valid config");
        assert!(matches!(config.auth, AuthConfig::Rs256Jwks { .. }));
        let error = dev_token(&config, DEV_USER, DEV_DEVICE, 24, Utc::now()).unwrap_err();
        assert!(matches!(error, DevTokenError::NotHs256 { .. }), "{error}");
    }

    #[test]
    fn dev_token_is_a_jwt_and_rejects_bad_ttls() {
        let config = Config::from_lookup(lookup(env(&[]))).expect("valid config");
        let token = dev_token(&config, DEV_USER, DEV_DEVICE, 24, Utc::now()).expect("token");
        assert_eq!(token.split('.').count(), 3, "{token}");
        for hours in [0, -1, MAX_DEV_TOKEN_TTL_HOURS + 1] {
            assert!(matches!(
                dev_token(&config, DEV_USER, DEV_DEVICE, hours, Utc::now()),
                Err(DevTokenError::BadTtl { .. })
            ));
        }
    }
}

//! Configuration, read from the environment once per cold start.

/// Shortest HS256 secret accepted (bytes): RFC 7518 asks for at least the hash size.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Everything a function needs to start.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
    /// Override endpoint, e.g. DynamoDB Local (`DYNAMODB_ENDPOINT`).
    pub dynamodb_endpoint: Option<String>,
    /// AWS region (`AWS_REGION`, default `us-east-1` with a local endpoint).
    pub region: Option<String>,
    /// How tokens are verified.
    pub auth: AuthConfig,
    /// Whether the reference brain recomputes training load (`BRAIN`: `reference`, the default, or `off`).
    pub brain: bool,
    /// The RS256 key tokens are issued with (`JWT_SIGNING_KMS_KEY_ID` or
    /// `JWT_SIGNING_KEY`, with `JWT_SIGNING_KID`); with HS256 the secret signs.
    pub signing_key: Option<SigningKey>,
    /// Where critical-alert pushes go (`PUSH_PROVIDER`).
    pub push: PushConfig,
}

/// The key RS256 access tokens are signed with (its public half is in the JWKS).
#[derive(Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// An asymmetric KMS key (`JWT_SIGNING_KMS_KEY_ID`: key id, key ARN or
    /// alias; RSA_2048 or larger, SIGN_VERIFY): every token is one `kms:Sign`
    /// call and the private key never leaves KMS. Deployed functions use this.
    Kms {
        /// The key id, key ARN or alias name.
        key_id: String,
        /// The `kid` the JWKS lists its public key under.
        kid: String,
    },
    /// A private key in PKCS#8 or PKCS#1 PEM, held in memory
    /// (`JWT_SIGNING_KEY`): local runs and tests.
    Pem {
        /// The PEM text.
        pem: String,
        /// The `kid` the JWKS lists its public key under.
        kid: String,
    },
}

impl std::fmt::Debug for SigningKey {
    // Never print the private key (a KMS key id is not a secret).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningKey::Kms { key_id, kid } => f
                .debug_struct("Kms")
                .field("key_id", key_id)
                .field("kid", kid)
                .finish(),
            SigningKey::Pem { kid, .. } => f
                .debug_struct("Pem")
                .field("pem", &"<redacted>")
                .field("kid", kid)
                .finish(),
        }
    }
}

/// Where pushes go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PushConfig {
    /// No pushes (`off`, the default): registrations keep their tokens only.
    #[default]
    Off,
    /// Amazon SNS mobile push (`sns`), one platform application per platform.
    Sns {
        /// `SNS_APNS_APPLICATION_ARN`.
        apns_application_arn: Option<String>,
        /// `SNS_FCM_APPLICATION_ARN`.
        fcm_application_arn: Option<String>,
    },
    /// An HTTP push receiver (`http`, local runs): `PUSH_RECEIVER_URL`.
    Http {
        /// Where deliveries are posted.
        url: String,
    },
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table_name", &self.table_name)
            .field("dynamodb_endpoint", &self.dynamodb_endpoint)
            .field("region", &self.region)
            .field("auth", &self.auth)
            .field("brain", &self.brain)
            .field("signing_key", &self.signing_key)
            .field("push", &self.push)
            .finish()
    }
}

/// Token verification settings: algorithms are pinned per mode.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// HS256 with a shared secret (`JWT_SECRET`): local runs and tests.
    Hs256 {
        /// The secret.
        secret: String,
        /// Required `iss`.
        issuer: String,
        /// Required `aud`.
        audience: String,
    },
    /// RS256 with keys from a JWKS URL (`JWKS_URL`): production, e.g. Cognito.
    Rs256Jwks {
        /// Where the key set is published.
        jwks_url: String,
        /// Required `iss`.
        issuer: String,
        /// Required `aud`.
        audience: String,
    },
}

impl std::fmt::Debug for AuthConfig {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthConfig::Hs256 {
                issuer, audience, ..
            } => f
                .debug_struct("Hs256")
                .field("secret", &"<redacted>")
                .field("issuer", issuer)
                .field("audience", audience)
                .finish(),
            AuthConfig::Rs256Jwks {
                jwks_url,
                issuer,
                audience,
            } => f
                .debug_struct("Rs256Jwks")
                .field("jwks_url", jwks_url)
                .field("issuer", issuer)
                .field("audience", audience)
                .finish(),
        }
    }
}

/// A configuration problem, named by its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    /// A variable has an unusable value.
    #[error("environment variable {var}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let table_name = required("TABLE_NAME")?;
        let issuer = required("JWT_ISSUER")?;
        let audience = required("JWT_AUDIENCE")?;
        let auth = match (get("JWT_SECRET"), get("JWKS_URL")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    var: "JWT_SECRET",
                    reason: "set either JWT_SECRET (HS256) or JWKS_URL (RS256), not both".into(),
                });
            }
            (Some(secret), None) => {
                if secret.len() < MIN_HS256_SECRET_BYTES {
                    return Err(ConfigError::Invalid {
                        var: "JWT_SECRET",
                        reason: format!("must be at least {MIN_HS256_SECRET_BYTES} bytes"),
                    });
                }
                AuthConfig::Hs256 {
                    secret,
                    issuer,
                    audience,
                }
            }
            (None, Some(jwks_url)) => {
                if url::Url::parse(&jwks_url).is_err() {
                    return Err(ConfigError::Invalid {
                        var: "JWKS_URL",
                        reason: "not a URL".into(),
                    });
                }
                AuthConfig::Rs256Jwks {
                    jwks_url,
                    issuer,
                    audience,
                }
            }
            (None, None) => return Err(ConfigError::Missing("JWT_SECRET or JWKS_URL")),
        };
        let brain = match get("BRAIN").as_deref() {
            None | Some("reference") => true,
            Some("off") => false,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: "BRAIN",
                    reason: "must be `reference` or `off`".into(),
                });
            }
        };
        let signing_key = match (
            get("JWT_SIGNING_KMS_KEY_ID"),
            get("JWT_SIGNING_KEY"),
            get("JWT_SIGNING_KID"),
        ) {
            (Some(_), Some(_), _) => {
                return Err(ConfigError::Invalid {
                    var: "JWT_SIGNING_KMS_KEY_ID",
                    reason: "set either JWT_SIGNING_KMS_KEY_ID (a KMS key) or JWT_SIGNING_KEY \
                             (a PEM private key), not both"
                        .into(),
                });
            }
            (None, None, None) => None,
            (Some(key_id), None, Some(kid)) => Some(SigningKey::Kms { key_id, kid }),
            (None, Some(pem), Some(kid)) => Some(SigningKey::Pem { pem, kid }),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(ConfigError::Missing("JWT_SIGNING_KID"));
            }
            (None, None, Some(_)) => {
                return Err(ConfigError::Missing(
                    "JWT_SIGNING_KMS_KEY_ID or JWT_SIGNING_KEY",
                ));
            }
        };
        let push = match get("PUSH_PROVIDER").as_deref() {
            None | Some("off") => PushConfig::Off,
            Some("sns") => {
                let apns_application_arn = get("SNS_APNS_APPLICATION_ARN");
                let fcm_application_arn = get("SNS_FCM_APPLICATION_ARN");
                if apns_application_arn.is_none() && fcm_application_arn.is_none() {
                    return Err(ConfigError::Missing(
                        "SNS_APNS_APPLICATION_ARN or SNS_FCM_APPLICATION_ARN",
                    ));
                }
                PushConfig::Sns {
                    apns_application_arn,
                    fcm_application_arn,
                }
            }
            Some("http") => PushConfig::Http {
                url: required("PUSH_RECEIVER_URL")?,
            },
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: "PUSH_PROVIDER",
                    reason: "must be `sns`, `http` or `off`".into(),
                });
            }
        };
        Ok(Config {
            table_name,
            dynamodb_endpoint: get("DYNAMODB_ENDPOINT"),
            region: get("AWS_REGION"),
            auth,
            brain,
            signing_key,
            push,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        ("TABLE_NAME", "t"),
        ("JWT_ISSUER", "i"),
        ("JWT_AUDIENCE", "a"),
    ];

    #[test]
    fn hs256_needs_a_long_secret() {
        let mut vars = BASE.to_vec();
        vars.push(("JWT_SECRET", "short"));
        assert!(matches!(
            Config::from_lookup(lookup(&vars)),
            Err(ConfigError::Invalid {
                var: "JWT_SECRET",
                ..
            })
        ));
        vars.pop();
        vars.push(("JWT_SECRET", "0123456789abcdef0123456789abcdef"));
        let config = Config::from_lookup(lookup(&vars)).unwrap();
        assert!(matches!(config.auth, AuthConfig::Hs256 { .. }));
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn exactly_one_auth_mode() {
        let mut vars = BASE.to_vec();
        assert_eq!(
            Config::from_lookup(lookup(&vars)),
            Err(ConfigError::Missing("JWT_SECRET or JWKS_URL"))
        );
        vars.push(("JWT_SECRET", "0123456789abcdef0123456789abcdef"));
        vars.push(("JWKS_URL", "https://example.com/jwks.json"));
        assert!(Config::from_lookup(lookup(&vars)).is_err());
        vars.remove(3);
        assert!(matches!(
            Config::from_lookup(lookup(&vars)).unwrap().auth,
            AuthConfig::Rs256Jwks { .. }
        ));
    }

    #[test]
    fn push_and_signing_settings_are_checked() {
        let mut vars = BASE.to_vec();
        vars.push(("JWT_SECRET", "0123456789abcdef0123456789abcdef"));
        let config = Config::from_lookup(lookup(&vars)).unwrap();
        assert_eq!((config.push, config.signing_key), (PushConfig::Off, None));
        vars.push(("PUSH_PROVIDER", "sns"));
        assert_eq!(
            Config::from_lookup(lookup(&vars)),
            Err(ConfigError::Missing(
                "SNS_APNS_APPLICATION_ARN or SNS_FCM_APPLICATION_ARN"
            ))
        );
        vars.push((
            "SNS_FCM_APPLICATION_ARN",
            "arn:aws:sns:eu-west-1:1:app/GCM/x",
        ));
        assert!(matches!(
            Config::from_lookup(lookup(&vars)).unwrap().push,
            PushConfig::Sns {
                apns_application_arn: None,
                fcm_application_arn: Some(_)
            }
        ));
        vars.push(("JWT_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            Config::from_lookup(lookup(&vars)),
            Err(ConfigError::Missing("JWT_SIGNING_KID"))
        );
        vars.push(("JWT_SIGNING_KID", "k1"));
        let config = Config::from_lookup(lookup(&vars)).unwrap();
        assert!(!format!("{config:?}").contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn a_kms_signing_key_needs_its_kid_and_excludes_a_pem_key() {
        let mut vars = BASE.to_vec();
        vars.push(("JWKS_URL", "https://example.com/jwks.json"));
        vars.push(("JWT_SIGNING_KMS_KEY_ID", "alias/trainsync-signing"));
        assert_eq!(
            Config::from_lookup(lookup(&vars)),
            Err(ConfigError::Missing("JWT_SIGNING_KID"))
        );
        vars.push(("JWT_SIGNING_KID", "k1"));
        assert_eq!(
            Config::from_lookup(lookup(&vars)).unwrap().signing_key,
            Some(SigningKey::Kms {
                key_id: "alias/trainsync-signing".into(),
                kid: "k1".into()
            })
        );
        vars.push(("JWT_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----"));
        assert!(matches!(
            Config::from_lookup(lookup(&vars)),
            Err(ConfigError::Invalid {
                var: "JWT_SIGNING_KMS_KEY_ID",
                ..
            })
        ));
        let kid_only = [
            BASE.as_slice(),
            &[("JWT_SECRET", "0123456789abcdef0123456789abcdef")],
            &[("JWT_SIGNING_KID", "k1")],
        ]
        .concat();
        assert_eq!(
            Config::from_lookup(lookup(&kid_only)),
            Err(ConfigError::Missing(
                "JWT_SIGNING_KMS_KEY_ID or JWT_SIGNING_KEY"
            ))
        );
    }

    #[test]
    fn missing_table_is_named() {
        assert_eq!(
            Config::from_lookup(|_| None),
            Err(ConfigError::Missing("TABLE_NAME"))
        );
    }
}

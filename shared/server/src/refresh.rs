//! Device-bound refresh tokens (PRD 8.1), rotated on every use with reuse
//! detection (RFC 9700 §4.14.2): the pure rules. A token names its family
//! (one per device login); storage keeps only the hash of the family's
//! current token. Presenting it rotates the family; presenting any other
//! token of the family means one was stolen or replayed, so the family and
//! its device are revoked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A refresh token unused for this long expires (the device logs in again).
pub const REFRESH_IDLE_DAYS: i64 = 60;

const PREFIX: &str = "rt1";

/// A refresh token as the device holds it: `rt1.<family>.<secret>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The family (one device login) it belongs to.
    pub family: Uuid,
    secret: [u8; 32],
}

/// Why a presented string is not a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a refresh token issued by this service")]
pub struct MalformedToken;

impl RefreshToken {
    /// A fresh token of `family`, with 256 random bits (two v4 UUIDs, from the OS RNG).
    pub fn generate(family: Uuid) -> Self {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        Self { family, secret }
    }

    /// Parses the form [`RefreshToken::encode`] writes.
    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        let mut parts = text.split('.');
        let (Some(PREFIX), Some(family), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedToken);
        };
        let family = Uuid::parse_str(family).map_err(|_| MalformedToken)?;
        let secret: [u8; 32] = URL_SAFE_NO_PAD
            .decode(secret)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(MalformedToken)?;
        Ok(Self { family, secret })
    }

    /// The string the device stores.
    pub fn encode(&self) -> String {
        format!(
            "{PREFIX}.{}.{}",
            self.family.as_hyphenated(),
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }

    /// The hash storage keeps (never the token itself).
    pub fn hash(&self) -> String {
        Sha256::digest(self.encode().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A token family's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    /// Hash of the one token that may be used next.
    pub current_hash: String,
    /// When a token of the family was last issued.
    pub last_issued_at: DateTime<Utc>,
    /// Set once the family (and its device) is revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What presenting a token of a family leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// The current token: issue a new pair and make the new token current.
    Rotate,
    /// An earlier (or forged) token of the family: revoke the family and its device.
    Reused,
    /// Unused for longer than [`REFRESH_IDLE_DAYS`]: log in again.
    Expired,
    /// The family was revoked (logout, or reuse seen before).
    Revoked,
}

/// The rule for presenting `token` to `family` at `now`.
pub fn decide(family: &RefreshFamily, token: &RefreshToken, now: DateTime<Utc>) -> RefreshDecision {
    if family.revoked_at.is_some() {
        RefreshDecision::Revoked
    } else if token.hash() != family.current_hash {
        RefreshDecision::Reused
    } else if now > family.last_issued_at + Duration::days(REFRESH_IDLE_DAYS) {
        RefreshDecision::Expired
    } else {
        RefreshDecision::Rotate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
    }

    fn family_of(token: &RefreshToken, issued: DateTime<Utc>) -> RefreshFamily {
        RefreshFamily {
            current_hash: token.hash(),
            last_issued_at: issued,
            revoked_at: None,
        }
    }

    #[test]
    fn tokens_round_trip_and_only_their_hash_is_kept() {
        let token = RefreshToken::generate(Uuid::new_v4());
        let text = token.encode();
        assert_eq!(RefreshToken::parse(&text), Ok(token.clone()));
        assert_eq!(token.hash().len(), 64);
        assert_eq!(token.hash(), RefreshToken::parse(&text).unwrap().hash());
        assert_ne!(token.hash(), RefreshToken::generate(token.family).hash());
        for bad in [
            "",
            "rt1",
            "rt1.x.y",
            "rt2.00000000-0000-0000-0000-000000000000.AAAA",
            &format!("{text}.extra"),
        ] {
            assert_eq!(RefreshToken::parse(bad), Err(MalformedToken), "{bad}");
        }
    }

    #[test]
    fn a_rotation_retires_the_previous_token_and_its_reuse_revokes() {
        let family = Uuid::new_v4();
        let first = RefreshToken::generate(family);
        let mut state = family_of(&first, now());
        assert_eq!(decide(&state, &first, now()), RefreshDecision::Rotate);
        // Rotated: the family's current token is a new one.
        let second = RefreshToken::generate(family);
        state.current_hash = second.hash();
        state.last_issued_at = now() + Duration::hours(20);
        assert_eq!(
            decide(&state, &first, now() + Duration::hours(21)),
            RefreshDecision::Reused
        );
        assert_eq!(
            decide(&state, &second, now() + Duration::hours(21)),
            RefreshDecision::Rotate
        );
        state.revoked_at = Some(now() + Duration::hours(21));
        assert_eq!(
            decide(&state, &second, now() + Duration::hours(22)),
            RefreshDecision::Revoked
        );
    }

    #[test]
    fn an_idle_family_expires() {
        let token = RefreshToken::generate(Uuid::new_v4());
        let state = family_of(&token, now());
        let limit = now() + Duration::days(REFRESH_IDLE_DAYS);
        assert_eq!(decide(&state, &token, limit), RefreshDecision::Rotate);
        assert_eq!(
            decide(&state, &token, limit + Duration::seconds(1)),
            RefreshDecision::Expired
        );
    }

    proptest! {
        /// Whatever was issued before, only the current token rotates; every
        /// other token of the family is reuse.
        #[test]
        fn only_the_current_token_rotates(issued in 1usize..8, presented in 0usize..8) {
            let family = Uuid::new_v4();
            let tokens: Vec<RefreshToken> = (0..issued).map(|_| RefreshToken::generate(family)).collect();
            let state = family_of(tokens.last().unwrap(), now());
            let token = tokens.get(presented).cloned().unwrap_or_else(|| RefreshToken::generate(family));
            let expected = if presented == issued - 1 { RefreshDecision::Rotate } else { RefreshDecision::Reused };
            prop_assert_eq!(decide(&state, &token, now()), expected);
        }
    }
}

//! Device-bound refresh tokens (PRD 8.1), rotated on every use with reuse
//! detection (RFC 9700 §4.14.2): the pure rules. A token names its family
//! (one per device login); storage keeps only hashes of the tokens it issued.
//!
//! - The current token rotates the family: a new pair, the new token current.
//! - The token rotated away less than [`REFRESH_GRACE_SECS`] ago (a response
//!   lost on a flaky network, or two app components refreshing at once)
//!   answers the same new refresh token again, with a fresh access token: the
//!   rotation is idempotent for a minute. The new token is kept sealed under
//!   the previous one, so only a holder of the previous token can open it and
//!   nothing usable is stored.
//! - The previous token after that minute, or any token issued before it
//!   (the last [`RETIRED_KEPT`] are remembered), means a copy is in other
//!   hands: the family and its device are revoked.
//! - A token of the family that it never issued (a forged secret for a known
//!   login id) is refused and changes nothing, so knowing a login id is not
//!   enough to log anyone out. Tokens older than the remembered ones are
//!   refused the same way.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A refresh token unused for this long expires (the device logs in again).
pub const REFRESH_IDLE_DAYS: i64 = 60;

/// How long the token just rotated away still answers the rotation's result.
pub const REFRESH_GRACE_SECS: i64 = 60;

/// How many tokens before the previous one a family remembers (as hashes) to
/// tell a replayed old token (theft) from a forged one.
pub const RETIRED_KEPT: usize = 16;

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
        trainsync_protocol::digest::sha256_hex(self.encode())
    }

    /// `next`'s secret sealed under this token: XOR with a pad derived from
    /// this token's 256-bit secret, so only a holder of this token opens it.
    pub fn seal(&self, next: &RefreshToken) -> String {
        let sealed: Vec<u8> = self
            .pad()
            .iter()
            .zip(next.secret)
            .map(|(p, s)| p ^ s)
            .collect();
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// Opens what [`RefreshToken::seal`] sealed under this token.
    pub fn unseal(&self, sealed: &str) -> Result<RefreshToken, MalformedToken> {
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(sealed)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(MalformedToken)?;
        let mut secret = [0u8; 32];
        for (out, (p, b)) in secret.iter_mut().zip(self.pad().iter().zip(bytes)) {
            *out = p ^ b;
        }
        Ok(Self {
            family: self.family,
            secret,
        })
    }

    fn pad(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"trainsync refresh seal v1");
        hasher.update(self.secret);
        hasher.finalize().into()
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
    /// The token the last rotation retired, while it may still repeat it.
    pub previous: Option<PreviousToken>,
    /// Hashes of tokens retired before the previous one, newest first (at
    /// most [`RETIRED_KEPT`]).
    pub retired: Vec<String>,
}

/// The token the last rotation retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousToken {
    /// Its hash.
    pub hash: String,
    /// When it was rotated away.
    pub rotated_at: DateTime<Utc>,
    /// The token it was rotated to, sealed under it ([`RefreshToken::seal`]).
    pub sealed_next: String,
}

impl RefreshFamily {
    /// A new family whose current token is `token`, issued at `now`.
    pub fn new(token: &RefreshToken, now: DateTime<Utc>) -> Self {
        Self {
            current_hash: token.hash(),
            last_issued_at: now,
            revoked_at: None,
            previous: None,
            retired: Vec::new(),
        }
    }

    /// The state after `presented` (the current token) is rotated to `next` at `now`.
    pub fn rotated(
        &self,
        presented: &RefreshToken,
        next: &RefreshToken,
        now: DateTime<Utc>,
    ) -> Self {
        let mut retired = self.retired.clone();
        if let Some(previous) = &self.previous {
            retired.insert(0, previous.hash.clone());
            retired.truncate(RETIRED_KEPT);
        }
        Self {
            current_hash: next.hash(),
            last_issued_at: now,
            revoked_at: None,
            previous: Some(PreviousToken {
                hash: presented.hash(),
                rotated_at: now,
                sealed_next: presented.seal(next),
            }),
            retired,
        }
    }
}

/// What presenting a token of a family leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// The current token: issue a new pair and make the new token current.
    Rotate,
    /// The token rotated away within the grace window: answer the token it
    /// was rotated to (this one, unsealed) again.
    Repeat(RefreshToken),
    /// A token the family retired earlier: revoke the family and its device.
    Reused,
    /// Not a token this family issued (forged, or older than remembered):
    /// refused, nothing changes.
    Unknown,
    /// Unused for longer than [`REFRESH_IDLE_DAYS`]: log in again.
    Expired,
    /// The family was revoked (logout, or reuse seen before).
    Revoked,
}

/// The rule for presenting `token` to `family` at `now`.
pub fn decide(family: &RefreshFamily, token: &RefreshToken, now: DateTime<Utc>) -> RefreshDecision {
    let hash = token.hash();
    if family.revoked_at.is_some() {
        return RefreshDecision::Revoked;
    }
    if hash == family.current_hash {
        return if now > family.last_issued_at + Duration::days(REFRESH_IDLE_DAYS) {
            RefreshDecision::Expired
        } else {
            RefreshDecision::Rotate
        };
    }
    if let Some(previous) = family.previous.as_ref().filter(|p| p.hash == hash) {
        let in_grace = now - previous.rotated_at <= Duration::seconds(REFRESH_GRACE_SECS);
        return match token.unseal(&previous.sealed_next) {
            Ok(next) if in_grace && next.hash() == family.current_hash => {
                RefreshDecision::Repeat(next)
            }
            // Late, or the family moved on since: a copy is in other hands.
            _ => RefreshDecision::Reused,
        };
    }
    if family.retired.contains(&hash) {
        RefreshDecision::Reused
    } else {
        RefreshDecision::Unknown
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
        RefreshFamily::new(token, issued)
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
    fn a_rotation_retires_the_previous_token_and_its_late_reuse_revokes() {
        let family = Uuid::new_v4();
        let first = RefreshToken::generate(family);
        let state = family_of(&first, now());
        assert_eq!(decide(&state, &first, now()), RefreshDecision::Rotate);
        let second = RefreshToken::generate(family);
        let rotated_at = now() + Duration::hours(20);
        let mut state = state.rotated(&first, &second, rotated_at);
        // Within the grace window the first token repeats the rotation.
        assert_eq!(
            decide(
                &state,
                &first,
                rotated_at + Duration::seconds(REFRESH_GRACE_SECS)
            ),
            RefreshDecision::Repeat(second.clone())
        );
        // After it, the first token is theft.
        assert_eq!(
            decide(
                &state,
                &first,
                rotated_at + Duration::seconds(REFRESH_GRACE_SECS + 1)
            ),
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
    fn a_forged_secret_is_unknown_and_old_tokens_are_theft_while_remembered() {
        let family = Uuid::new_v4();
        let tokens: Vec<RefreshToken> = (0..RETIRED_KEPT + 3)
            .map(|_| RefreshToken::generate(family))
            .collect();
        let mut state = family_of(&tokens[0], now());
        for pair in tokens.windows(2) {
            state = state.rotated(&pair[0], &pair[1], now());
        }
        let later = now() + Duration::minutes(5);
        assert_eq!(
            decide(&state, &RefreshToken::generate(family), later),
            RefreshDecision::Unknown,
            "a forged secret for a real family changes nothing"
        );
        let last = tokens.len() - 1;
        assert_eq!(
            decide(&state, &tokens[last], later),
            RefreshDecision::Rotate
        );
        assert_eq!(
            decide(&state, &tokens[last - 1], later),
            RefreshDecision::Reused
        );
        assert_eq!(
            decide(&state, &tokens[last - 2], later),
            RefreshDecision::Reused
        );
        assert_eq!(state.retired.len(), RETIRED_KEPT);
        assert_eq!(
            decide(&state, &tokens[0], later),
            RefreshDecision::Unknown,
            "older than remembered"
        );
    }

    #[test]
    fn only_the_previous_token_opens_the_sealed_next() {
        let family = Uuid::new_v4();
        let (previous, next) = (
            RefreshToken::generate(family),
            RefreshToken::generate(family),
        );
        let sealed = previous.seal(&next);
        assert_eq!(previous.unseal(&sealed), Ok(next.clone()));
        let other = RefreshToken::generate(family);
        assert_ne!(other.unseal(&sealed), Ok(next));
        assert_eq!(previous.unseal("not base64!"), Err(MalformedToken));
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
        /// Whatever was issued before, only the current token rotates, the
        /// previous one repeats within the grace window, every earlier one is
        /// reuse, and a token never issued is unknown.
        #[test]
        fn only_the_current_token_rotates(issued in 1usize..8, presented in 0usize..9, late in any::<bool>()) {
            let family = Uuid::new_v4();
            let tokens: Vec<RefreshToken> = (0..issued).map(|_| RefreshToken::generate(family)).collect();
            let mut state = family_of(&tokens[0], now());
            for pair in tokens.windows(2) {
                state = state.rotated(&pair[0], &pair[1], now());
            }
            let at = now() + Duration::seconds(if late { REFRESH_GRACE_SECS + 1 } else { 1 });
            let expected = match presented {
                p if p == issued - 1 => RefreshDecision::Rotate,
                p if p + 2 == issued && !late => RefreshDecision::Repeat(tokens[issued - 1].clone()),
                p if p < issued => RefreshDecision::Reused,
                _ => RefreshDecision::Unknown,
            };
            let token = tokens.get(presented).cloned().unwrap_or_else(|| RefreshToken::generate(family));
            prop_assert_eq!(decide(&state, &token, at), expected);
        }
    }
}

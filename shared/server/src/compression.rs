//! gzip for request and response bodies (PRD 7.1), with a hard cap on the
//! decompressed size so a small "gzip bomb" cannot exhaust memory.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than the cap (compressed or inflated).
    #[error("the body is larger than {limit} bytes{}", if *.inflated { " once decompressed" } else { "" })]
    TooLarge {
        /// The cap.
        limit: usize,
        /// Whether it was the inflated size that broke it.
        inflated: bool,
    },
    /// Not valid gzip.
    #[error("the body is not valid gzip: {0}")]
    Corrupt(String),
    /// An encoding we do not speak.
    #[error("unsupported Content-Encoding {0:?}: send identity or gzip")]
    Unsupported(String),
}

/// Decodes `body` as sent with `content_encoding`, refusing anything over `limit` bytes.
pub fn decode_body(
    body: &[u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge {
            limit,
            inflated: false,
        });
    }
    let encoding = content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            // Read one byte past the limit to tell "exactly at" from "over".
            let mut decoder = GzDecoder::new(body).take(limit as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            if out.len() > limit {
                return Err(DecodeError::TooLarge {
                    limit,
                    inflated: true,
                });
            }
            Ok(out)
        }
        other => Err(DecodeError::Unsupported(other.to_owned())),
    }
}

/// Whether an `Accept-Encoding` header value admits gzip (honouring `q=0`).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|value| {
        value.split(',').any(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let coding = pieces.next().unwrap_or("").to_ascii_lowercase();
            let refused = pieces.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding == "gzip" || coding == "x-gzip" || coding == "*") && !refused
        })
    })
}

/// gzip-compresses `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3 + 32),
        Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips() {
        let body = br#"{"hello":"world"}"#.repeat(100);
        assert_eq!(
            decode_body(&gzip(&body), Some("gzip"), 1 << 20).unwrap(),
            body
        );
        assert_eq!(decode_body(&body, None, 1 << 20).unwrap(), body);
    }

    #[test]
    fn a_gzip_bomb_is_stopped_at_the_limit() {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![0u8; 50 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 100 << 10, "the bomb is small on the wire");
        assert_eq!(
            decode_body(&bomb, Some("gzip"), 256 << 10),
            Err(DecodeError::TooLarge {
                limit: 256 << 10,
                inflated: true
            })
        );
    }

    #[test]
    fn exactly_at_the_limit_is_fine_and_one_over_is_not() {
        let body = vec![b'a'; 1000];
        assert!(decode_body(&gzip(&body), Some("gzip"), 1000).is_ok());
        assert!(decode_body(&gzip(&body), Some("gzip"), 999).is_err());
        assert!(decode_body(&body, None, 999).is_err());
    }

    #[test]
    fn corrupt_and_unknown_encodings_are_refused() {
        assert!(matches!(
            decode_body(b"nope", Some("gzip"), 100),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode_body(b"x", Some("br"), 100),
            Err(DecodeError::Unsupported(_))
        ));
    }

    #[test]
    fn accept_encoding_is_parsed() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}

//! The compact binary track format (version 1, described in the parent module): encode, decode, chunk.

use crate::track::model::MAX_TRACK_POINTS;
use crate::track::model::Track;
use crate::track::model::TrackPoint;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};

/// Largest chunk of an encoded track stored in one DynamoDB item (bytes),
/// leaving room under the 400 KB item limit for keys and attributes.
pub const MAX_CHUNK_BYTES: usize = 350 * 1024;

/// The binary format [`encode`] writes.
pub const FORMAT_VERSION: u8 = 1;

/// Largest inflated payload [`decode`] accepts: 64 bytes per point allowed,
/// plus the header. Guards against gzip bombs.
pub const MAX_INFLATED_BYTES: usize = 64 * MAX_TRACK_POINTS + 64;

const LAT_LON_SCALE: f64 = 1e7;

const ELEVATION_SCALE: f64 = 10.0;

/// Why encoded track bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// Not valid gzip (including a truncated gzip stream).
    #[error("the track is not valid gzip: {0}")]
    Gzip(String),
    /// Inflates to more than [`MAX_INFLATED_BYTES`].
    #[error("the track inflates to more than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// A format version this code does not read.
    #[error("unsupported track format version {0}")]
    UnsupportedVersion(u8),
    /// More points than [`MAX_TRACK_POINTS`].
    #[error("the track has {0} points, more than {MAX_TRACK_POINTS}")]
    TooManyPoints(u64),
    /// The payload ends early.
    #[error("the track data ends early")]
    Truncated,
    /// The payload is inconsistent.
    #[error("the track data is malformed: {0}")]
    Malformed(&'static str),
}

/// How an optional column's values are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    None = 0,
    All = 1,
    Bitmap = 2,
}

impl Presence {
    fn of(present: impl Iterator<Item = bool>) -> Presence {
        let (mut any, mut all) = (false, true);
        for p in present {
            any |= p;
            all &= p;
        }
        match (any, all) {
            (false, _) => Presence::None,
            (true, true) => Presence::All,
            (true, false) => Presence::Bitmap,
        }
    }

    fn from_bits(bits: u8) -> Result<Presence, TrackError> {
        match bits {
            0 => Ok(Presence::None),
            1 => Ok(Presence::All),
            2 => Ok(Presence::Bitmap),
            _ => Err(TrackError::Malformed("unknown presence mode")),
        }
    }
}

fn lat_lon_fixed(degrees: f64) -> i32 {
    // `as` saturates out-of-range values and maps NaN to 0: never panics.
    (degrees * LAT_LON_SCALE).round() as i32
}

fn elevation_fixed(metres: f64) -> i32 {
    (metres * ELEVATION_SCALE).round() as i32
}

/// A point as it comes back from a round trip: latitude and longitude
/// quantised to 1e-7 degree, elevation to 0.1 m.
pub fn quantize(point: &TrackPoint) -> TrackPoint {
    TrackPoint {
        t_ms: point.t_ms,
        lat: f64::from(lat_lon_fixed(point.lat)) / LAT_LON_SCALE,
        lon: f64::from(lat_lon_fixed(point.lon)) / LAT_LON_SCALE,
        elevation_m: point
            .elevation_m
            .map(|e| f64::from(elevation_fixed(e)) / ELEVATION_SCALE),
        hr: point.hr,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// How a column is delta-coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delta {
    /// Each value minus the previous one (the first minus 0).
    First,
    /// Each delta minus the previous delta (the first two deltas as they are):
    /// near 0 for steady motion, so steady 1 Hz times and a steady pace cost little.
    Second,
}

/// Writes a column of signed values as zigzag varint deltas.
fn put_deltas(out: &mut Vec<u8>, values: impl Iterator<Item = i64>, order: Delta) {
    let (mut previous, mut previous_delta) = (0i64, 0i64);
    for (i, v) in values.enumerate() {
        let delta = v.wrapping_sub(previous);
        let coded = match order {
            Delta::First => delta,
            Delta::Second => delta.wrapping_sub(previous_delta),
        };
        put_signed(out, coded);
        previous = v;
        if i > 0 {
            previous_delta = delta;
        }
    }
}

fn put_presence(out: &mut Vec<u8>, presence: Presence, present: impl Iterator<Item = bool>) {
    if presence != Presence::Bitmap {
        return;
    }
    let start = out.len();
    for (i, p) in present.enumerate() {
        if i % 8 == 0 {
            out.push(0);
        }
        if p {
            out[start + i / 8] |= 1 << (i % 8);
        }
    }
}

/// Encodes a track in the compact binary form (see the module docs).
///
/// Meant for validated tracks; values out of range are saturated rather than
/// refused, so encoding never fails or panics. A track of more than
/// [`MAX_TRACK_POINTS`] points encodes but does not decode: validate first.
pub fn encode(track: &Track) -> Vec<u8> {
    let points = &track.points;
    let elevation = Presence::of(points.iter().map(|p| p.elevation_m.is_some()));
    let hr = Presence::of(points.iter().map(|p| p.hr.is_some()));

    let mut raw = Vec::with_capacity(16 + points.len() * 8);
    raw.push(FORMAT_VERSION);
    put_varint(&mut raw, points.len() as u64);
    raw.push((elevation as u8) | ((hr as u8) << 2));
    put_deltas(&mut raw, points.iter().map(|p| p.t_ms), Delta::Second);
    let lat = points.iter().map(|p| i64::from(lat_lon_fixed(p.lat)));
    put_deltas(&mut raw, lat, Delta::Second);
    let lon = points.iter().map(|p| i64::from(lat_lon_fixed(p.lon)));
    put_deltas(&mut raw, lon, Delta::Second);
    put_presence(
        &mut raw,
        elevation,
        points.iter().map(|p| p.elevation_m.is_some()),
    );
    put_deltas(
        &mut raw,
        points
            .iter()
            .filter_map(|p| p.elevation_m)
            .map(|e| i64::from(elevation_fixed(e))),
        Delta::First,
    );
    put_presence(&mut raw, hr, points.iter().map(|p| p.hr.is_some()));
    let hr_values = points.iter().filter_map(|p| p.hr).map(i64::from);
    put_deltas(&mut raw, hr_values, Delta::First);

    let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 2), Compression::best());
    // Writing into a Vec cannot fail.
    gz.write_all(&raw)
        .and_then(|()| gz.finish())
        .unwrap_or_default()
}

/// Reads the inflated payload.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, TrackError> {
        let (&first, rest) = self.bytes.split_first().ok_or(TrackError::Truncated)?;
        self.bytes = rest;
        Ok(first)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], TrackError> {
        if n > self.bytes.len() {
            return Err(TrackError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, TrackError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(TrackError::Malformed("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(TrackError::Malformed("varint overflows 64 bits"))
    }

    fn signed(&mut self) -> Result<i64, TrackError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// Reads `n` deltas and returns the running values.
    fn deltas(&mut self, n: usize, order: Delta) -> Result<Vec<i64>, TrackError> {
        let mut values = Vec::with_capacity(n.min(self.bytes.len()));
        let (mut previous, mut previous_delta) = (0i64, 0i64);
        for i in 0..n {
            let coded = self.signed()?;
            let delta = match order {
                Delta::First => coded,
                Delta::Second => previous_delta.wrapping_add(coded),
            };
            previous = previous.wrapping_add(delta);
            if i > 0 {
                previous_delta = delta;
            }
            values.push(previous);
        }
        Ok(values)
    }

    /// Reads `n` deltas of a column stored as i32.
    fn deltas_i32(&mut self, n: usize, order: Delta) -> Result<Vec<i32>, TrackError> {
        self.deltas(n, order)?
            .into_iter()
            .map(|v| i32::try_from(v).map_err(|_| TrackError::Malformed("value out of range")))
            .collect()
    }

    fn presence(&mut self, presence: Presence, n: usize) -> Result<Vec<bool>, TrackError> {
        match presence {
            Presence::None => Ok(vec![false; n]),
            Presence::All => Ok(vec![true; n]),
            Presence::Bitmap => {
                let bitmap = self.take(n.div_ceil(8))?;
                let bits: Vec<bool> = (0..n)
                    .map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
                    .collect();
                let spare_bits = bitmap.len() * 8 - n;
                if spare_bits > 0
                    && bitmap
                        .last()
                        .is_some_and(|&last| last >> (8 - spare_bits) != 0)
                {
                    return Err(TrackError::Malformed("presence bits past the last point"));
                }
                Ok(bits)
            }
        }
    }
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, TrackError> {
    let mut raw = Vec::new();
    // Read one byte past the cap to tell "exactly at" from "over".
    GzDecoder::new(bytes)
        .take(MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| TrackError::Gzip(e.to_string()))?;
    if raw.len() > MAX_INFLATED_BYTES {
        return Err(TrackError::TooLarge {
            limit: MAX_INFLATED_BYTES,
        });
    }
    Ok(raw)
}

/// Decodes bytes written by [`encode`]; truncated or corrupt input is an error.
pub fn decode(bytes: &[u8]) -> Result<Track, TrackError> {
    let raw = inflate(bytes)?;
    let mut r = Reader { bytes: &raw };
    let version = r.byte()?;
    if version != FORMAT_VERSION {
        return Err(TrackError::UnsupportedVersion(version));
    }
    let count = r.varint()?;
    let n = usize::try_from(count)
        .ok()
        .filter(|&n| n <= MAX_TRACK_POINTS)
        .ok_or(TrackError::TooManyPoints(count))?;
    // The flags byte, then at least one byte per point in each of the three required columns.
    if r.bytes.len() < n.saturating_mul(3).saturating_add(1) {
        return Err(TrackError::Truncated);
    }
    let flags = r.byte()?;
    if flags >> 4 != 0 {
        return Err(TrackError::Malformed("unknown flags"));
    }
    let elevation_presence = Presence::from_bits(flags & 0b11)?;
    let hr_presence = Presence::from_bits((flags >> 2) & 0b11)?;

    let times = r.deltas(n, Delta::Second)?;
    let lats = r.deltas_i32(n, Delta::Second)?;
    let lons = r.deltas_i32(n, Delta::Second)?;
    let has_elevation = r.presence(elevation_presence, n)?;
    let elevation_count = has_elevation.iter().filter(|&&p| p).count();
    let elevations = r.deltas_i32(elevation_count, Delta::First)?;
    let has_hr = r.presence(hr_presence, n)?;
    let hrs = r
        .deltas(has_hr.iter().filter(|&&p| p).count(), Delta::First)?
        .into_iter()
        .map(|v| u16::try_from(v).map_err(|_| TrackError::Malformed("heart rate out of range")))
        .collect::<Result<Vec<u16>, _>>()?;
    if !r.bytes.is_empty() {
        return Err(TrackError::Malformed("trailing bytes"));
    }

    let mut elevations = elevations.into_iter();
    let mut hrs = hrs.into_iter();
    let points = (0..n)
        .map(|i| TrackPoint {
            t_ms: times[i],
            lat: f64::from(lats[i]) / LAT_LON_SCALE,
            lon: f64::from(lons[i]) / LAT_LON_SCALE,
            elevation_m: has_elevation[i]
                .then(|| elevations.next())
                .flatten()
                .map(|e| f64::from(e) / ELEVATION_SCALE),
            hr: has_hr[i].then(|| hrs.next()).flatten(),
        })
        .collect();
    Ok(Track { points })
}

/// Splits encoded bytes into pieces of at most `max_chunk` bytes (at least 1),
/// in order; concatenating them gives the bytes back. Empty input gives no chunks.
pub fn chunks(bytes: &[u8], max_chunk: usize) -> impl Iterator<Item = &[u8]> {
    bytes.chunks(max_chunk.max(1))
}

//! GPS tracks in a compact binary form (PRD 7.1).
//!
//! A 3-hour run recorded at 1 Hz has more than 10 000 points, far too many to
//! travel inside an activity. A track is stored apart from its activity,
//! encoded with [`encode`], split by [`chunks`] into pieces under DynamoDB's
//! 400 KB item limit, and fetched on demand as binary.
//!
//! # Format (version 1)
//!
//! The whole payload is gzip-compressed. Inflated, it is:
//!
//! 1. the version byte (`1`);
//! 2. the point count, an unsigned LEB128 varint;
//! 3. a flags byte: bits 0–1 say how elevations are present, bits 2–3 the
//!    same for heart rates (`0` none, `1` on every point, `2` a presence
//!    bitmap follows); the other bits are 0;
//! 4. columns of zigzag LEB128 varints: time (ms), latitude and longitude
//!    (fixed point, 1e-7 degree, as i32) as second-order deltas (each delta
//!    minus the previous delta, near 0 for a steady 1 Hz pace); then for
//!    elevation (decimetres) and heart rate (bpm) the optional bitmap (bit
//!    `i % 8` of byte `i / 8` set when point `i` has a value) followed by
//!    first-order deltas of the values present. The first value of a column
//!    is its delta from 0, and the second its plain delta from the first.
//!
//! Columns rather than interleaved points put similar bytes together, which
//! gzip compresses far better.
//!
//! Round trips are exact up to the fixed-point quantisation: latitude and
//! longitude to 1e-7 degree (about 1 cm), elevation to 0.1 m (see
//! [`quantize`]). Times, heart rates and absent values are kept exactly.

use std::io::{Read, Write};

use chrono::{DateTime, TimeZone, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::validation::{FieldError, FieldErrorCode, Validate, check_timestamp};

/// Most points one track may have.
pub const MAX_TRACK_POINTS: usize = 100_000;

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

/// One recorded GPS fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackPoint {
    /// Time of the fix, unix milliseconds.
    pub t_ms: i64,
    /// Latitude, -90..=90 degrees.
    pub lat: f64,
    /// Longitude, -180..=180 degrees.
    pub lon: f64,
    /// Elevation, -500..=9000 m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation_m: Option<f64>,
    /// Heart rate, 25..=250 bpm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr: Option<u16>,
}

/// An activity's GPS track: points in time order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// The fixes, times non-decreasing; at most [`MAX_TRACK_POINTS`].
    pub points: Vec<TrackPoint>,
}

fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: impl FnOnce() -> String,
    value: T,
    min: T,
    max: T,
) -> Result<(), FieldError> {
    // `contains` is false for NaN, so NaN is refused too.
    if (min..=max).contains(&value) {
        return Ok(());
    }
    let field = field();
    Err(FieldError::new(
        &field,
        FieldErrorCode::OutOfRange,
        format!("{field} must be between {min} and {max}, got {value}"),
    ))
}

fn point_time(field: &str, t_ms: i64) -> Result<DateTime<Utc>, FieldError> {
    Utc.timestamp_millis_opt(t_ms).single().ok_or_else(|| {
        FieldError::new(
            field,
            FieldErrorCode::OutOfRange,
            format!("{field} is not a valid time, got {t_ms}"),
        )
    })
}

impl Validate for Track {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        if self.points.len() > MAX_TRACK_POINTS {
            return Err(FieldError::new(
                "points",
                FieldErrorCode::TooLong,
                format!(
                    "a track has at most {MAX_TRACK_POINTS} points, got {}",
                    self.points.len()
                ),
            ));
        }
        let mut previous_t: Option<i64> = None;
        for (i, p) in self.points.iter().enumerate() {
            let path = |name: &str| format!("points[{i}].{name}");
            // Times are non-decreasing, so checking the first and last bounds them all.
            if i == 0 || i + 1 == self.points.len() {
                let field = path("t_ms");
                check_timestamp(&field, point_time(&field, p.t_ms)?, now)?;
            }
            if previous_t.is_some_and(|prev| p.t_ms < prev) {
                return Err(FieldError::new(
                    path("t_ms"),
                    FieldErrorCode::OutOfRange,
                    format!("points[{i}].t_ms goes back in time"),
                ));
            }
            previous_t = Some(p.t_ms);
            check_range(|| path("lat"), p.lat, -90.0, 90.0)?;
            check_range(|| path("lon"), p.lon, -180.0, 180.0)?;
            if let Some(e) = p.elevation_m {
                check_range(|| path("elevation_m"), e, -500.0, 9000.0)?;
            }
            if let Some(hr) = p.hr {
                check_range(|| path("hr"), hr, 25, 250)?;
            }
        }
        Ok(())
    }
}

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

fn put_signed(out: &mut Vec<u8>, v: i64) {
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

/// The latitude/longitude rectangle a track lies in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Southernmost latitude.
    pub min_lat: f64,
    /// Westernmost longitude (no antimeridian wrap-around).
    pub min_lon: f64,
    /// Northernmost latitude.
    pub max_lat: f64,
    /// Easternmost longitude.
    pub max_lon: f64,
}

/// What is stored beside a track's chunks, so a list never fetches the track itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackSummary {
    /// Number of points.
    pub points: u32,
    /// Time of the first point, unix ms; `None` for an empty track.
    pub started_at_ms: Option<i64>,
    /// Time of the last point, unix ms; `None` for an empty track.
    pub ended_at_ms: Option<i64>,
    /// Sum of the haversine distances between consecutive points (metres).
    pub distance_m: f64,
    /// The rectangle the points lie in; `None` for an empty track.
    pub bbox: Option<BoundingBox>,
    /// Size of [`encode`]'s output (bytes).
    pub encoded_bytes: u32,
}

/// Mean Earth radius (metres) used for distances.
pub const EARTH_RADIUS_M: f64 = 6_371_000.0;

/// Great-circle distance between two points (haversine, spherical Earth), in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Summarises a track (this encodes it once, to measure its size).
pub fn summarize(track: &Track) -> TrackSummary {
    let points = &track.points;
    let distance_m = points
        .windows(2)
        .map(|w| haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon))
        .sum();
    let bbox = points.first().map(|first| {
        points.iter().fold(
            BoundingBox {
                min_lat: first.lat,
                min_lon: first.lon,
                max_lat: first.lat,
                max_lon: first.lon,
            },
            |b, p| BoundingBox {
                min_lat: b.min_lat.min(p.lat),
                min_lon: b.min_lon.min(p.lon),
                max_lat: b.max_lat.max(p.lat),
                max_lon: b.max_lon.max(p.lon),
            },
        )
    });
    TrackSummary {
        points: u32::try_from(points.len()).unwrap_or(u32::MAX),
        started_at_ms: points.first().map(|p| p.t_ms),
        ended_at_ms: points.last().map(|p| p.t_ms),
        distance_m,
        bbox,
        encoded_bytes: u32::try_from(encode(track).len()).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
    }

    const START_MS: i64 = 1_748_700_000_000; // 2025-05-31T14:00:00Z

    fn point(t_s: i64, lat: f64, lon: f64) -> TrackPoint {
        TrackPoint {
            t_ms: START_MS + t_s * 1000,
            lat,
            lon,
            elevation_m: Some(100.0),
            hr: Some(140),
        }
    }

    fn quantized(track: &Track) -> Track {
        Track {
            points: track.points.iter().map(quantize).collect(),
        }
    }

    /// A 3-hour run at 1 Hz: ~3 m/s along a gently curving path, elevation
    /// rolling over ±30 m, heart rate drifting 130–170 with GPS-like jitter.
    fn three_hour_run() -> Track {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut noise = move || {
            // xorshift64*: deterministic jitter in [-0.5, 0.5).
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let (mut lat, mut lon) = (52.520_008_f64, 13.404_954_f64);
        let metres_per_deg_lat = 111_195.0;
        let metres_per_deg_lon = metres_per_deg_lat * lat.to_radians().cos();
        let points = (0..10_800)
            .map(|i| {
                let s = i as f64;
                let heading = s / 600.0 + (s / 97.0).sin() * 0.3;
                let speed = 3.0 + 0.3 * (s / 300.0).sin() + 0.2 * noise();
                lat += speed * heading.cos() / metres_per_deg_lat + noise() * 2e-6;
                lon += speed * heading.sin() / metres_per_deg_lon + noise() * 2e-6;
                TrackPoint {
                    t_ms: START_MS + i * 1000,
                    lat,
                    lon,
                    elevation_m: Some(
                        60.0 + 30.0 * (s / 900.0).sin() + 5.0 * (s / 130.0).sin() + noise() * 0.6,
                    ),
                    hr: Some((150.0 + 15.0 * (s / 1800.0).sin() + 4.0 * noise()).round() as u16),
                }
            })
            .collect();
        Track { points }
    }

    #[test]
    fn a_three_hour_run_is_compact() {
        let track = three_hour_run();
        assert_eq!(track.validate(now()), Ok(()));
        let n = track.points.len() as f64;
        let binary = encode(&track);
        let json = serde_json::to_vec(&track).unwrap();
        let per_point = binary.len() as f64 / n;
        let json_per_point = json.len() as f64 / n;
        let json_gz = {
            let mut gz = GzEncoder::new(Vec::new(), Compression::best());
            gz.write_all(&json).unwrap();
            gz.finish().unwrap()
        };
        println!(
            "3-hour run, {} points: binary {} B ({per_point:.2} B/point), JSON {} B ({json_per_point:.1} B/point, {:.1}x), gzipped JSON {} B ({:.2} B/point)",
            track.points.len(),
            binary.len(),
            json.len(),
            json.len() as f64 / binary.len() as f64,
            json_gz.len(),
            json_gz.len() as f64 / n,
        );
        assert!(per_point < 3.0, "{per_point} bytes/point");
        // Measured: 2.47 B/point against 113 B/point for JSON (46x).
        assert!(json.len() >= 30 * binary.len());
        assert!(binary.len() <= MAX_CHUNK_BYTES);
        assert_eq!(decode(&binary).unwrap(), quantized(&track));
        let summary = summarize(&track);
        assert_eq!(summary.points, 10_800);
        assert_eq!(summary.encoded_bytes as usize, binary.len());
        // ~3 m/s for 3 hours ≈ 32 km, plus GPS jitter.
        assert!(
            (30_000.0..36_000.0).contains(&summary.distance_m),
            "{}",
            summary.distance_m
        );
    }

    #[test]
    fn nones_round_trip_exactly() {
        let mut track = Track {
            points: (0..20)
                .map(|i| point(i, 47.0 + i as f64 * 1e-5, 8.5))
                .collect(),
        };
        for (i, p) in track.points.iter_mut().enumerate() {
            if i % 3 == 0 {
                p.elevation_m = None;
            }
            if i % 5 != 0 {
                p.hr = None;
            }
        }
        assert_eq!(decode(&encode(&track)).unwrap(), quantized(&track));
        let bare = Track {
            points: track
                .points
                .iter()
                .map(|p| TrackPoint {
                    elevation_m: None,
                    hr: None,
                    ..p.clone()
                })
                .collect(),
        };
        assert_eq!(decode(&encode(&bare)).unwrap(), quantized(&bare));
        assert_eq!(
            decode(&encode(&Track::default())).unwrap(),
            Track::default()
        );
    }

    #[test]
    fn quantisation_is_1e7_degree_and_a_decimetre() {
        let p = TrackPoint {
            t_ms: 0,
            lat: 47.123_456_789,
            lon: -122.987_654_321,
            elevation_m: Some(123.456),
            hr: Some(150),
        };
        let q = quantize(&p);
        assert_eq!(q.lat, 47.123_456_8);
        assert_eq!(q.lon, -122.987_654_3);
        assert_eq!(q.elevation_m, Some(123.5));
        assert_eq!(q.hr, Some(150));
        assert!((q.lat - p.lat).abs() <= 0.5e-7 && (q.lon - p.lon).abs() <= 0.5e-7);
    }

    #[test]
    fn truncated_and_garbage_bytes_are_errors() {
        let bytes = encode(&three_hour_run());
        for len in [
            0,
            1,
            5,
            10,
            18,
            bytes.len() / 2,
            bytes.len() - 9,
            bytes.len() - 1,
        ] {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        assert!(matches!(decode(b"not a track"), Err(TrackError::Gzip(_))));
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x55;
        assert!(decode(&flipped).is_err());
    }

    fn gzip(raw: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(raw).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn corrupt_payloads_are_named() {
        assert_eq!(decode(&gzip(&[])), Err(TrackError::Truncated));
        assert_eq!(
            decode(&gzip(&[2, 0, 0])),
            Err(TrackError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode(&gzip(&[1, 0xa1, 0x8d, 0x06, 0])),
            Err(TrackError::TooManyPoints(100_001))
        );
        assert_eq!(decode(&gzip(&[1, 1, 0, 2, 2])), Err(TrackError::Truncated));
        // One point, elevation bitmap (mode 2) with a bit set for a second point.
        assert_eq!(
            decode(&gzip(&[1, 1, 2, 0, 0, 0, 0b11])),
            Err(TrackError::Malformed("presence bits past the last point"))
        );
        assert_eq!(
            decode(&gzip(&[1, 0, 0b1_0000])),
            Err(TrackError::Malformed("unknown flags"))
        );
        assert_eq!(
            decode(&gzip(&[1, 0, 0b11])),
            Err(TrackError::Malformed("unknown presence mode"))
        );
        assert_eq!(
            decode(&gzip(&[1, 0, 0, 7])),
            Err(TrackError::Malformed("trailing bytes"))
        );
        // Latitude delta beyond i32.
        let mut raw = vec![1, 1, 0, 0];
        put_signed(&mut raw, i64::from(i32::MAX) + 1);
        raw.push(0);
        assert_eq!(
            decode(&gzip(&raw)),
            Err(TrackError::Malformed("value out of range"))
        );
        // A varint running past 64 bits.
        let raw = [
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert_eq!(
            decode(&gzip(&raw)),
            Err(TrackError::Malformed("varint overflows 64 bits"))
        );
    }

    #[test]
    fn gzip_bombs_are_refused() {
        let bomb = gzip(&vec![0u8; MAX_INFLATED_BYTES + 1]);
        assert!(bomb.len() < 20_000);
        assert_eq!(
            decode(&bomb),
            Err(TrackError::TooLarge {
                limit: MAX_INFLATED_BYTES
            })
        );
    }

    #[test]
    fn chunks_reassemble() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let parts: Vec<&[u8]> = chunks(&bytes, 300).collect();
        assert_eq!(
            parts.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [300, 300, 300, 100]
        );
        assert_eq!(parts.concat(), bytes);
        assert_eq!(chunks(&bytes, MAX_CHUNK_BYTES).count(), 1);
        assert_eq!(chunks(&[], 10).count(), 0);
        assert_eq!(chunks(&bytes, 0).count(), 1000);
    }

    #[test]
    fn haversine_matches_known_distances() {
        // One degree along a meridian: 6 371 000 × π / 180 = 111 194.93 m.
        let one_degree = haversine_m(0.0, 0.0, 1.0, 0.0);
        assert!((one_degree - 111_194.926_6).abs() < 0.01, "{one_degree}");
        assert!((haversine_m(0.0, 10.0, 0.0, 11.0) - one_degree).abs() < 1e-6);
        // Big Ben (51.5007 N, 0.1246 W) to the Statue of Liberty (40.6892 N,
        // 74.0445 W): about 5 574.8 km.
        let d = haversine_m(51.5007, -0.1246, 40.6892, -74.0445);
        assert!((d - 5_574_840.0).abs() < 1_000.0, "{d}");
        assert_eq!(haversine_m(12.0, 34.0, 12.0, 34.0), 0.0);
    }

    #[test]
    fn summary_of_a_known_track() {
        let track = Track {
            points: vec![
                point(0, 0.0, 0.0),
                point(60, 1.0, 0.0),
                point(120, 1.0, 1.0),
            ],
        };
        let s = summarize(&track);
        assert_eq!(s.points, 3);
        assert_eq!(s.started_at_ms, Some(START_MS));
        assert_eq!(s.ended_at_ms, Some(START_MS + 120_000));
        // 111 194.93 m north, then 1° east at 1° N: 111 194.93 × cos 1° ≈ 111 178.0 m.
        let expected = haversine_m(0.0, 0.0, 1.0, 0.0) + haversine_m(1.0, 0.0, 1.0, 1.0);
        assert!((s.distance_m - expected).abs() < 1e-6);
        assert!((haversine_m(1.0, 0.0, 1.0, 1.0) - 111_177.99).abs() < 0.1);
        assert_eq!(
            s.bbox,
            Some(BoundingBox {
                min_lat: 0.0,
                min_lon: 0.0,
                max_lat: 1.0,
                max_lon: 1.0
            })
        );
        let empty = summarize(&Track::default());
        assert_eq!(
            (empty.points, empty.bbox, empty.started_at_ms),
            (0, None, None)
        );
        assert_eq!(empty.distance_m, 0.0);
    }

    #[test]
    fn validation_names_the_point_and_field() {
        let good = Track {
            points: vec![point(0, 47.0, 8.0), point(1, 47.0001, 8.0001)],
        };
        assert_eq!(good.validate(now()), Ok(()));
        let field_of = |edit: &dyn Fn(&mut Track)| {
            let mut t = good.clone();
            edit(&mut t);
            let err = t.validate(now()).unwrap_err();
            (err.field, err.code)
        };
        let out = FieldErrorCode::OutOfRange;
        assert_eq!(
            field_of(&|t| t.points[1].lat = 90.5),
            ("points[1].lat".into(), out)
        );
        assert_eq!(
            field_of(&|t| t.points[1].lat = f64::NAN),
            ("points[1].lat".into(), out)
        );
        assert_eq!(
            field_of(&|t| t.points[0].lon = -180.1),
            ("points[0].lon".into(), out)
        );
        assert_eq!(
            field_of(&|t| t.points[1].elevation_m = Some(9000.5)),
            ("points[1].elevation_m".into(), out)
        );
        assert_eq!(
            field_of(&|t| t.points[0].hr = Some(24)),
            ("points[0].hr".into(), out)
        );
        assert_eq!(
            field_of(&|t| t.points[1].t_ms = START_MS - 1),
            ("points[1].t_ms".into(), out)
        );
        assert_eq!(
            field_of(&|t| t.points[0].t_ms = 0),
            ("points[0].t_ms".into(), out)
        );
        assert_eq!(
            field_of(&|t| t.points = vec![point(0, 0.0, 0.0); MAX_TRACK_POINTS + 1]),
            ("points".into(), FieldErrorCode::TooLong)
        );
        // Equal times are allowed (non-decreasing).
        let mut same_time = good.clone();
        same_time.points[1].t_ms = same_time.points[0].t_ms;
        assert_eq!(same_time.validate(now()), Ok(()));
    }

    #[test]
    fn json_refuses_unknown_fields() {
        let err = crate::validation::parse_json::<Track>(serde_json::json!({
            "points": [{"t_ms": 0, "lat": 1.0, "lon": 2.0, "heart_rate": 150}]
        }))
        .unwrap_err();
        assert_eq!(err.code, FieldErrorCode::UnknownField);
        assert_eq!(err.field, "points[0].heart_rate");
    }

    fn point_strategy() -> impl Strategy<Value = TrackPoint> {
        (
            0i64..5_000,
            -90.0f64..=90.0,
            -180.0f64..=180.0,
            proptest::option::of(-500.0f64..=9000.0),
            proptest::option::of(25u16..=250),
        )
            .prop_map(|(dt, lat, lon, elevation_m, hr)| TrackPoint {
                t_ms: dt,
                lat,
                lon,
                elevation_m,
                hr,
            })
    }

    fn track_strategy() -> impl Strategy<Value = Track> {
        proptest::collection::vec(point_strategy(), 0..200).prop_map(|mut points| {
            // Turn the generated gaps into non-decreasing times.
            let mut t = START_MS;
            for p in &mut points {
                t += p.t_ms;
                p.t_ms = t;
            }
            Track { points }
        })
    }

    proptest! {
        #[test]
        fn round_trip_is_exact_after_quantising(track in track_strategy()) {
            prop_assert_eq!(track.validate(now()), Ok(()));
            let bytes = encode(&track);
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(&decoded, &quantized(&track));
            // Quantised values encode to the very same bytes.
            prop_assert_eq!(encode(&decoded), bytes);
        }

        #[test]
        fn encode_never_panics_and_saturates_out_of_range_values(
            raw in proptest::collection::vec(
                (any::<i64>(), any::<f64>(), any::<f64>(), any::<Option<f64>>(), any::<Option<u16>>()),
                0..50,
            )
        ) {
            let track = Track {
                points: raw
                    .into_iter()
                    .map(|(t_ms, lat, lon, elevation_m, hr)| TrackPoint { t_ms, lat, lon, elevation_m, hr })
                    .collect(),
            };
            prop_assert_eq!(decode(&encode(&track)).unwrap(), quantized(&track));
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
            let _ = decode(&gzip(&bytes));
        }

        #[test]
        fn any_truncation_is_an_error(track in track_strategy(), cut in 0.0f64..1.0) {
            let bytes = encode(&track);
            let len = (bytes.len() as f64 * cut) as usize;
            prop_assert!(decode(&bytes[..len]).is_err());
        }
    }
}

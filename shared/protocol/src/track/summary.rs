//! What an activity shows of its track without fetching it: distance and bounding box.

use crate::track::codec::encode;
use crate::track::model::Track;
use serde::{Deserialize, Serialize};

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

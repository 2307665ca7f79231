//! A GPS track as the wearable pipeline sends it, and the rules it must meet.

use crate::validate::{FieldError, FieldErrorCode, Validate, check_timestamp};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Most points one track may have.
pub const MAX_TRACK_POINTS: usize = 100_000;

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

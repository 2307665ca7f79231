//! Track model, codec and summary tests.

use super::*;
use std::io::Write;

use crate::track::codec::put_signed;
use crate::validate::FieldErrorCode;
use crate::validate::Validate;
use chrono::{DateTime, TimeZone, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
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
    let err = crate::validate::parse_json::<Track>(serde_json::json!({
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

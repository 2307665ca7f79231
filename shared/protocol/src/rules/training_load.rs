//! The reference "brain": training-load formulas (session-RPE, ACWR, ATL/CTL/TSB).
//!
//! These are pure functions over daily loads, so server and client compute the
//! same numbers. They are a stand-in: a real analytics engine replaces them
//! later by writing its results through the ingest path, tagged with its own
//! algorithm version instead of [`ALGORITHM_VERSION`].
//!
//! Everything is recomputed from the full load history on each call, so a
//! late-arriving workout (one dated before results already computed) simply
//! changes the next result; the input order never matters.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::domain::{Activity, RiskLevel};

/// Identifies the formulas below in stored results.
pub const ALGORITHM_VERSION: &str = "session-rpe-ewma-v1";

/// Days in the acute window (the 7 days ending on `as_of`).
pub const ACUTE_WINDOW_DAYS: u64 = 7;

/// Days in the chronic window (the 28 days ending on `as_of`).
pub const CHRONIC_WINDOW_DAYS: u64 = 28;

/// Time constant of the acute training load (ATL), in days.
pub const ATL_TIME_CONSTANT_DAYS: f64 = 7.0;

/// Time constant of the chronic training load (CTL), in days.
pub const CTL_TIME_CONSTANT_DAYS: f64 = 42.0;

/// An ACWR strictly above this is a warning.
pub const WARNING_ACWR: f64 = 1.3;

/// An ACWR strictly above this is critical.
pub const CRITICAL_ACWR: f64 = 1.5;

/// Session-RPE load (Foster): minutes × RPE, e.g. 60 min at RPE 6 is 360.
///
/// `None` without an RPE: such an activity contributes nothing to any load
/// until its RPE arrives (an amendment), at which point a recompute counts it.
pub fn session_load(duration_s: u32, rpe: Option<u8>) -> Option<f64> {
    rpe.map(|rpe| f64::from(duration_s) / 60.0 * f64::from(rpe))
}

/// An activity's session load with its UTC start date, ready for [`compute`];
/// `None` when it has no RPE yet.
pub fn activity_load(activity: &Activity) -> Option<(NaiveDate, f64)> {
    session_load(activity.duration_s, activity.rpe)
        .map(|load| (activity.started_at.date_naive(), load))
}

/// Training-load figures for one day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingLoad {
    /// The day the figures describe (inclusive).
    pub as_of: NaiveDate,
    /// Mean daily load over the 7 days ending on `as_of`.
    pub acute_load: f64,
    /// Mean daily load over the 28 days ending on `as_of` (the acute week included).
    pub chronic_load: f64,
    /// Acute:chronic workload ratio; `None` when the chronic load is 0.
    pub acwr: Option<f64>,
    /// Acute training load: exponentially weighted daily load, time constant 7 days.
    pub atl: f64,
    /// Chronic training load ("fitness"): exponentially weighted daily load, time constant 42 days.
    pub ctl: f64,
    /// Training stress balance ("form"): `ctl - atl`, both as of the same day.
    pub tsb: f64,
}

impl TrainingLoad {
    /// The same figures rounded to 2 decimals, for display only.
    pub fn rounded(&self) -> TrainingLoad {
        let r = |x: f64| (x * 100.0).round() / 100.0;
        TrainingLoad {
            as_of: self.as_of,
            acute_load: r(self.acute_load),
            chronic_load: r(self.chronic_load),
            acwr: self.acwr.map(r),
            atl: r(self.atl),
            ctl: r(self.ctl),
            tsb: r(self.tsb),
        }
    }

    /// The risk level of this ACWR (see [`risk_level`]).
    pub fn risk_level(&self) -> RiskLevel {
        risk_level(self.acwr)
    }
}

/// Sums loads per date, ignoring non-finite values and dates after `as_of`.
///
/// Each day's loads are summed in sorted order, so the totals are bit-for-bit
/// the same whatever order the input comes in.
fn daily_totals(
    loads: impl IntoIterator<Item = (NaiveDate, f64)>,
    as_of: NaiveDate,
) -> BTreeMap<NaiveDate, f64> {
    let mut per_day: BTreeMap<NaiveDate, Vec<f64>> = BTreeMap::new();
    for (date, load) in loads {
        if date <= as_of && load.is_finite() {
            per_day.entry(date).or_default().push(load);
        }
    }
    per_day
        .into_iter()
        .map(|(date, mut day)| {
            day.sort_by(f64::total_cmp);
            (date, day.iter().sum())
        })
        .collect()
}

/// Mean daily load over the `days` days ending on `as_of`; days without data count as 0.
fn window_mean(totals: &BTreeMap<NaiveDate, f64>, as_of: NaiveDate, days: u64) -> f64 {
    let sum: f64 = match as_of.checked_sub_days(Days::new(days - 1)) {
        Some(first) => totals.range(first..=as_of).map(|(_, load)| load).sum(),
        None => totals.range(..=as_of).map(|(_, load)| load).sum(),
    };
    sum / days as f64
}

/// Computes the training-load figures as of `as_of` from (UTC date, load) pairs.
///
/// - Several loads on one date add up to that day's total; loads dated after
///   `as_of` are ignored, as are non-finite ones (loads are expected ≥ 0).
/// - Acute and chronic loads are plain means over 7 and 28 days ending on
///   `as_of`, days without data counting as 0; ACWR is their ratio.
/// - ATL and CTL follow Banister/TrainingPeaks: `x_t = x_{t-1} + (load_t - x_{t-1}) / N`
///   with N = 7 and 42, starting from 0 before the first day with data and
///   stepping every day through `as_of` (days without data have load 0).
/// - TSB is CTL − ATL of the same day, so `as_of`'s own load already counts
///   (TrainingPeaks' "form" uses the previous day's values instead).
///
/// Nothing is rounded; use [`TrainingLoad::rounded`] for display.
pub fn compute(
    loads: impl IntoIterator<Item = (NaiveDate, f64)>,
    as_of: NaiveDate,
) -> TrainingLoad {
    let totals = daily_totals(loads, as_of);
    let acute_load = window_mean(&totals, as_of, ACUTE_WINDOW_DAYS);
    let chronic_load = window_mean(&totals, as_of, CHRONIC_WINDOW_DAYS);
    let acwr = (chronic_load != 0.0).then(|| acute_load / chronic_load);

    let (mut atl, mut ctl) = (0.0_f64, 0.0_f64);
    if let Some(first) = totals.keys().next() {
        for day in first.iter_days().take_while(|d| *d <= as_of) {
            let load = totals.get(&day).copied().unwrap_or(0.0);
            atl += (load - atl) / ATL_TIME_CONSTANT_DAYS;
            ctl += (load - ctl) / CTL_TIME_CONSTANT_DAYS;
        }
    }

    TrainingLoad {
        as_of,
        acute_load,
        chronic_load,
        acwr,
        atl,
        ctl,
        tsb: ctl - atl,
    }
}

/// The risk band of an ACWR: above 1.5 critical, above 1.3 warning, else normal.
///
/// The thresholds themselves are not "above": exactly 1.3 is normal and
/// exactly 1.5 is a warning. No ACWR (no chronic load yet) is normal.
pub fn risk_level(acwr: Option<f64>) -> RiskLevel {
    match acwr {
        Some(r) if r > CRITICAL_ACWR => RiskLevel::Critical,
        Some(r) if r > WARNING_ACWR => RiskLevel::Warning,
        _ => RiskLevel::Normal,
    }
}

/// The alert to raise when the risk moves from `previous` to `current`: at most
/// once per crossing.
///
/// Only a rise across a threshold raises (`Some(current)`, which is then
/// Warning or Critical); staying at a level raises nothing. A fall (Critical →
/// Warning, or back to Normal) raises nothing but resets, so a later rise
/// raises again. The caller stores `current` as the next `previous`.
pub fn alert_to_raise(previous: RiskLevel, current: RiskLevel) -> Option<RiskLevel> {
    (current > previous).then_some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    const EPS: f64 = 1e-9;

    fn day(n: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 1)
            .unwrap()
            .checked_add_days(Days::new(n))
            .unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < EPS
    }

    #[test]
    fn session_load_is_minutes_times_rpe() {
        // 3600 s = 60 min; 60 × 6 = 360.
        assert_eq!(session_load(3600, Some(6)), Some(360.0));
        // 90 s = 1.5 min; 1.5 × 4 = 6.
        assert_eq!(session_load(90, Some(4)), Some(6.0));
        assert_eq!(session_load(3600, None), None);
    }

    #[test]
    fn activity_load_uses_the_utc_start_date() {
        let activity: Activity = serde_json::from_value(serde_json::json!({
            "id": "0b5f3c52-54c4-4f7a-9d8e-6f0f1c9e2a11",
            "activity_type": "run",
            "started_at": "2025-05-31T23:30:00-02:00",
            "duration_s": 1800,
            "rpe": 5,
            "source": "manual"
        }))
        .unwrap();
        // 23:30 at UTC−2 is 01:30 UTC on June 1st; 30 min × 5 = 150.
        assert_eq!(
            activity_load(&activity),
            Some((NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(), 150.0))
        );
        assert_eq!(
            activity.started_at,
            Utc.with_ymd_and_hms(2025, 6, 1, 1, 30, 0).unwrap()
        );
        let without_rpe = Activity {
            rpe: None,
            ..activity
        };
        assert_eq!(activity_load(&without_rpe), None);
    }

    #[test]
    fn a_28_day_history_gives_an_exact_acwr() {
        // Days 0..=20 at 100, days 21..=27 at 200; as_of = day 27.
        // acute   = 7 × 200 / 7 = 200
        // chronic = (21 × 100 + 7 × 200) / 28 = 3500 / 28 = 125
        // acwr    = 200 / 125 = 1.6 → critical
        let loads = (0..28).map(|n| (day(n), if n < 21 { 100.0 } else { 200.0 }));
        let result = compute(loads, day(27));
        assert_eq!(result.acute_load, 200.0);
        assert_eq!(result.chronic_load, 125.0);
        assert_eq!(result.acwr, Some(1.6));
        assert_eq!(result.risk_level(), RiskLevel::Critical);
    }

    #[test]
    fn several_sessions_on_one_day_add_up() {
        // Day 0: 100 + 50 = 150. acute = 150 / 7, chronic = 150 / 28, acwr = 28 / 7 = 4.
        let result = compute([(day(0), 100.0), (day(0), 50.0)], day(0));
        assert!(close(result.acute_load, 150.0 / 7.0));
        assert!(close(result.chronic_load, 150.0 / 28.0));
        assert!(close(result.acwr.unwrap(), 4.0));
    }

    #[test]
    fn windows_count_missing_days_as_zero() {
        // One load of 280 eight days before as_of: outside the 7-day window,
        // inside the 28-day one. acute = 0, chronic = 280 / 28 = 10, acwr = 0.
        let result = compute([(day(0), 280.0)], day(8));
        assert_eq!(result.acute_load, 0.0);
        assert_eq!(result.chronic_load, 10.0);
        assert_eq!(result.acwr, Some(0.0));
        // 28 days later it has left the chronic window too.
        let result = compute([(day(0), 280.0)], day(28));
        assert_eq!(result.chronic_load, 0.0);
        assert_eq!(result.acwr, None);
    }

    #[test]
    fn atl_and_ctl_after_one_two_three_days_of_100() {
        // ATL: x1 = 100/7                      = 14.285714285714...
        //      x2 = x1 + (100 - x1)/7          = 26.530612244897...  (= 100 × (1 - (6/7)²))
        //      x3 = x2 + (100 - x2)/7          = 37.026239067055...  (= 100 × 127/343)
        // CTL: y1 = 100/42                     =  2.380952380952...
        //      y2 = 100 × (1 - (41/42)²)       =  4.705215419501...  (= 100 × 83/1764)
        //      y3 = 100 × (1 - (41/42)³)       =  6.974084871774...  (= 100 × 5167/74088)
        let expected = [
            (100.0 / 7.0, 100.0 / 42.0),
            (100.0 * 13.0 / 49.0, 100.0 * 83.0 / 1764.0),
            (100.0 * 127.0 / 343.0, 100.0 * 5167.0 / 74088.0),
        ];
        for (n, (atl, ctl)) in expected.into_iter().enumerate() {
            let loads = (0..=n as u64).map(|d| (day(d), 100.0));
            let result = compute(loads, day(n as u64));
            assert!(close(result.atl, atl), "day {n}: atl {}", result.atl);
            assert!(close(result.ctl, ctl), "day {n}: ctl {}", result.ctl);
            assert!(close(result.tsb, ctl - atl));
        }
        assert!(close(100.0 / 7.0, 14.285_714_285_714));
        assert!((100.0 * 13.0 / 49.0 - 26.530_612_244_897_96_f64).abs() < 1e-9);
    }

    #[test]
    fn ewma_starts_on_the_first_day_with_data_and_decays_on_rest_days() {
        // Load 70 on day 0, nothing on day 1: ATL = 70/7 = 10, then 10 - 10/7 = 60/7.
        let result = compute([(day(0), 70.0)], day(1));
        assert!(close(result.atl, 60.0 / 7.0));
        // Nothing before day 0 counts: the same load on a later first day gives the same ATL.
        let shifted = compute([(day(100), 70.0)], day(101));
        assert!(close(shifted.atl, result.atl));
    }

    #[test]
    fn tsb_is_negative_after_a_hard_block_and_positive_after_rest() {
        // 6 weeks at 60/day, then 14 days at 150/day: ATL reacts faster than CTL.
        let hard: Vec<_> = (0..56)
            .map(|n| (day(n), if n < 42 { 60.0 } else { 150.0 }))
            .collect();
        let tired = compute(hard.clone(), day(55));
        assert!(tired.atl > tired.ctl);
        assert!(tired.tsb < 0.0);
        // Then 14 rest days: ATL falls faster than CTL, so form turns positive.
        let rested = compute(hard, day(69));
        assert!(rested.tsb > 0.0);
        assert!(rested.acwr.unwrap() < 1.0);
    }

    #[test]
    fn no_load_gives_zeros_and_no_acwr() {
        let result = compute(std::iter::empty(), day(10));
        assert_eq!(
            result,
            TrainingLoad {
                as_of: day(10),
                acute_load: 0.0,
                chronic_load: 0.0,
                acwr: None,
                atl: 0.0,
                ctl: 0.0,
                tsb: 0.0,
            }
        );
        assert_eq!(result.risk_level(), RiskLevel::Normal);
    }

    #[test]
    fn loads_after_as_of_and_non_finite_loads_are_ignored() {
        let base = compute([(day(0), 100.0)], day(3));
        let noisy = compute(
            [
                (day(0), 100.0),
                (day(4), 500.0),
                (day(1), f64::NAN),
                (day(2), f64::INFINITY),
            ],
            day(3),
        );
        assert_eq!(base, noisy);
    }

    #[test]
    fn a_late_arriving_earlier_workout_changes_the_result() {
        let before = compute([(day(10), 100.0)], day(10));
        // The day-5 run syncs after day 10 was computed: a recompute counts it.
        let after = compute([(day(10), 100.0), (day(5), 100.0)], day(10));
        assert_ne!(before, after);
        // acute: (100 + 100) / 7; ATL now starts on day 5.
        assert!(close(after.acute_load, 200.0 / 7.0));
        assert!(after.atl > before.atl);
        // The same result whichever order the two arrive in.
        assert_eq!(after, compute([(day(5), 100.0), (day(10), 100.0)], day(10)));
    }

    #[test]
    fn rounded_keeps_two_decimals() {
        let r = compute([(day(0), 100.0)], day(0)).rounded();
        // 100/7 = 14.2857… → 14.29; 100/28 = 3.5714… → 3.57; 100/42 = 2.3809… → 2.38.
        assert_eq!(r.acute_load, 14.29);
        assert_eq!(r.chronic_load, 3.57);
        assert_eq!(r.acwr, Some(4.0));
        assert_eq!(r.atl, 14.29);
        assert_eq!(r.ctl, 2.38);
        assert_eq!(r.tsb, -11.9);
    }

    #[test]
    fn serde_round_trips() {
        let result = compute([(day(0), 100.0)], day(3));
        let json = serde_json::to_value(result).unwrap();
        assert_eq!(json["as_of"], "2025-01-04");
        let back: TrainingLoad = serde_json::from_value(json).unwrap();
        assert_eq!(back, result);
        assert_eq!(
            serde_json::to_value(RiskLevel::Critical).unwrap(),
            "critical"
        );
    }

    #[test]
    fn risk_level_boundaries_are_not_above() {
        assert_eq!(risk_level(None), RiskLevel::Normal);
        assert_eq!(risk_level(Some(0.0)), RiskLevel::Normal);
        assert_eq!(risk_level(Some(1.3)), RiskLevel::Normal);
        assert_eq!(risk_level(Some(1.300_000_1)), RiskLevel::Warning);
        assert_eq!(risk_level(Some(1.5)), RiskLevel::Warning);
        assert_eq!(risk_level(Some(1.500_000_1)), RiskLevel::Critical);
        assert_eq!(risk_level(Some(f64::NAN)), RiskLevel::Normal);
        assert!(RiskLevel::Normal < RiskLevel::Warning && RiskLevel::Warning < RiskLevel::Critical);
    }

    /// Replays a sequence of levels from Normal, collecting the alerts raised.
    fn alerts(levels: &[RiskLevel]) -> Vec<Option<RiskLevel>> {
        let mut previous = RiskLevel::Normal;
        levels
            .iter()
            .map(|&current| {
                let alert = alert_to_raise(previous, current);
                previous = current;
                alert
            })
            .collect()
    }

    #[test]
    fn alerts_are_raised_once_per_crossing() {
        use RiskLevel::{Critical, Normal, Warning};
        assert_eq!(alert_to_raise(Normal, Warning), Some(Warning));
        assert_eq!(alert_to_raise(Warning, Critical), Some(Critical));
        assert_eq!(alert_to_raise(Normal, Critical), Some(Critical));
        assert_eq!(alert_to_raise(Critical, Critical), None);
        assert_eq!(alert_to_raise(Warning, Warning), None);
        assert_eq!(alert_to_raise(Normal, Normal), None);
        assert_eq!(alert_to_raise(Critical, Warning), None);
        assert_eq!(alert_to_raise(Critical, Normal), None);
        // critical → normal → critical raises again.
        assert_eq!(
            alerts(&[Critical, Critical, Normal, Critical]),
            [Some(Critical), None, None, Some(Critical)]
        );
        // critical → warning → critical: the fall resets, the rise raises again.
        assert_eq!(
            alerts(&[Warning, Critical, Warning, Warning, Critical]),
            [Some(Warning), Some(Critical), None, None, Some(Critical)]
        );
    }

    /// Dated loads, and the same loads shuffled.
    type LoadsAndShuffled = (Vec<(NaiveDate, f64)>, Vec<(NaiveDate, f64)>);

    fn loads_strategy() -> impl Strategy<Value = LoadsAndShuffled> {
        proptest::collection::vec((0u64..90, 0.0f64..2000.0), 0..60).prop_flat_map(|raw| {
            let loads: Vec<_> = raw.into_iter().map(|(n, l)| (day(n), l)).collect();
            (Just(loads.clone()), Just(loads).prop_shuffle())
        })
    }

    proptest! {
        #[test]
        fn compute_does_not_depend_on_input_order((loads, shuffled) in loads_strategy(), as_of in 0u64..100) {
            let mut sorted = loads;
            sorted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            prop_assert_eq!(compute(shuffled, day(as_of)), compute(sorted, day(as_of)));
        }

        #[test]
        fn figures_stay_finite_and_consistent((loads, _) in loads_strategy(), as_of in 0u64..100) {
            let r = compute(loads, day(as_of));
            prop_assert!(r.acute_load >= 0.0 && r.chronic_load >= 0.0 && r.atl >= 0.0 && r.ctl >= 0.0);
            prop_assert!(r.tsb == r.ctl - r.atl);
            prop_assert_eq!(r.acwr.is_none(), r.chronic_load == 0.0);
            // The 7-day sum is part of the 28-day sum: acwr ≤ 28/7 = 4.
            prop_assert!(r.acwr.is_none_or(|a| a <= 4.0 + 1e-9));
        }
    }
}

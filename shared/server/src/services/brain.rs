//! The reference "brain": after activities change, recompute the user's
//! training load (session-RPE ACWR, ATL/CTL/TSB; formulas in
//! [`trainsync_protocol::rules::training_load`]), publish it as `calculated_metrics` with its
//! provenance, and raise an injury-risk alert when the ACWR crosses a
//! threshold upwards. A real Adaptive Training Engine replaces this by
//! publishing through the ingest path (and setting `BRAIN=off`).

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use trainsync_protocol::domain::RiskLevel;
use uuid::Uuid;

use crate::services::commit::{Attempt, commit_time, commit_with_retry};
use crate::store::{Commit, EntityKey, Loaded, StoreError, StoredEntity, SyncStore};
use trainsync_protocol::domain::{
    Activity, Alert, AlertKind, CalculatedMetrics, EntityKind, MetricsProvenance, Severity,
    Tombstone, UserId,
};
use trainsync_protocol::rules::resolve::{Batch, CURRENT, Change, Context};
use trainsync_protocol::rules::training_load::{
    ALGORITHM_VERSION, activity_load, alert_to_raise, compute,
};

/// How far back activities are read. CTL's weight of a load 180 days old is
/// (41/42)^180 ≈ 1.3 %, so older history changes nothing that matters.
pub const LOAD_HISTORY_DAYS: i64 = 180;

/// What a recompute decided, from the state it read.
#[derive(Debug, Clone, PartialEq)]
pub struct Recompute {
    /// The new metrics, or `None` when they equal the stored ones.
    pub metrics: Option<CalculatedMetrics>,
    /// The injury-risk alert to raise, if the ACWR crossed a threshold upwards.
    pub alert: Option<Alert>,
}

fn metrics_key() -> EntityKey {
    EntityKey::new(EntityKind::CalculatedMetrics, CURRENT)
}

/// A stored entity's data as `T`; data that does not parse is corrupt.
fn parse_stored<T: serde::de::DeserializeOwned>(entity: &StoredEntity) -> Result<T, StoreError> {
    serde_json::from_value(entity.data.clone())
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", entity.key)))
}

/// Pure: the metrics and alert for the activities in `loaded`, as of `now`.
/// A stored activity or metrics record that does not parse is an error, so
/// metrics never silently leave a workout out.
pub fn decide(loaded: &Loaded, now: DateTime<Utc>) -> Result<Recompute, StoreError> {
    let activities: Vec<Activity> = loaded
        .entities
        .values()
        .filter(|e| e.key.kind == EntityKind::Activity && Tombstone::of(&e.data).is_none())
        .map(parse_stored)
        .collect::<Result<_, _>>()?;
    let previous: Option<CalculatedMetrics> = loaded
        .entities
        .get(&metrics_key())
        .map(parse_stored)
        .transpose()?;
    let as_of = now.date_naive();
    let load = compute(activities.iter().filter_map(activity_load), as_of).rounded();
    let level = load.risk_level();
    let counted: Vec<&Activity> = activities
        .iter()
        .filter(|a| activity_load(a).is_some() && a.started_at.date_naive() <= as_of)
        .collect();
    let metrics = CalculatedMetrics {
        as_of,
        acwr: load.acwr,
        atl: load.atl,
        ctl: load.ctl,
        tsb: load.tsb,
        readiness: previous.as_ref().and_then(|p| p.readiness),
        risk_level: Some(level),
        provenance: MetricsProvenance {
            algorithm: ALGORITHM_VERSION.into(),
            computed_at: now,
            last_activity_id: counted
                .iter()
                .max_by_key(|a| (a.started_at, a.id))
                .map(|a| a.id),
            through_seq: loaded.head.seq,
            activities: counted.len() as u32,
        },
    };
    let unchanged = previous.as_ref().is_some_and(|p| {
        let mut same = metrics.clone();
        same.provenance.computed_at = p.provenance.computed_at;
        same.provenance.through_seq = p.provenance.through_seq;
        same == *p
    });
    let previous_level = previous
        .and_then(|p| p.risk_level)
        .unwrap_or(RiskLevel::Normal);
    let alert = alert_to_raise(previous_level, level).map(|raised| {
        let severity = if raised == RiskLevel::Critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let band = if severity == Severity::Critical {
            "critical"
        } else {
            "warning"
        };
        let mut params = serde_json::Map::new();
        params.insert("acwr".into(), json!(load.acwr));
        Alert {
            id: Uuid::now_v7(),
            kind: AlertKind::InjuryRisk,
            severity,
            title_key: format!("alert.injury_risk.{band}.title"),
            body_key: format!("alert.injury_risk.{band}.body"),
            params,
            created_at: now,
            expires_at: Some(now + Duration::days(7)),
        }
    });
    Ok(Recompute {
        metrics: (!unchanged).then_some(metrics),
        alert,
    })
}

/// Recomputes `user`'s training load and publishes it (plus an alert on an
/// upward crossing). Re-reads and recomputes when a concurrent commit wins,
/// so stored metrics never describe an older state than the log.
pub async fn recompute(
    store: &dyn SyncStore,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<Recompute, StoreError> {
    commit_with_retry(store, user, |_| async move {
        let mut keys: Vec<EntityKey> = store
            .activities_started_between(
                user,
                now - Duration::days(LOAD_HISTORY_DAYS),
                now + Duration::days(1),
            )
            .await?
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        keys.push(metrics_key());
        let loaded = store.load(user, &keys).await?;
        let decision = decide(&loaded, now)?;
        let mut batch = Batch::default();
        batch
            .changes
            .extend(decision.metrics.clone().map(Change::Metrics));
        batch
            .changes
            .extend(decision.alert.clone().map(Change::Alert));
        if batch.changes.is_empty() {
            return Ok::<_, StoreError>(Attempt::Nothing(decision));
        }
        let at = commit_time(&loaded.head, now);
        let ctx = Context {
            at,
            origin: trainsync_protocol::rules::merge::Origin::Backend,
            device: None,
        };
        let resolution = batch.resolve(&loaded, ctx);
        let commit = Commit {
            base: loaded.head.clone(),
            at,
            writes: resolution.writes,
            device_id: None,
            plan_version: None,
            request: None,
            session: None,
            conflicts: 0,
            visit: None,
        };
        Ok(Attempt::Commit(Box::new(commit), decision))
    })
    .await?
    .into_done()
}

/// Runs [`recompute`] after a commit that wrote `activities_written`
/// activities, when the reference brain is `enabled`. Failures are logged,
/// not returned: the commit stands and the next activity recomputes.
pub async fn after_commit(
    store: &dyn SyncStore,
    enabled: bool,
    user: &UserId,
    activities_written: usize,
    now: DateTime<Utc>,
) {
    if activities_written == 0 || !enabled {
        return;
    }
    if let Err(e) = recompute(store, user, now).await {
        tracing::warn!(error = %e, "training-load recompute failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainsync_protocol::rules::resolve::activity_key;

    #[test]
    fn a_corrupt_stored_activity_is_an_error_not_left_out_of_the_load() {
        let mut loaded = Loaded::default();
        let key = activity_key(Uuid::new_v4());
        loaded.entities.insert(
            key.clone(),
            StoredEntity {
                key,
                seq: 1,
                updated_at: Utc::now(),
                data: json!({"duration_s": "an hour"}),
            },
        );
        assert!(matches!(
            decide(&loaded, Utc::now()),
            Err(StoreError::Corrupt(_))
        ));
        assert!(decide(&Loaded::default(), Utc::now()).is_ok());
    }
}

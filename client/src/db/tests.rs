use chrono::Utc;
use rusqlite::Connection;
use serde_json::json;
use trainsync_protocol::wire::ItemType;

use super::*;

#[test]
fn a_new_file_gets_the_newest_schema_and_reopening_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let conn = open(&path).unwrap();
    assert_eq!(schema_version(&conn).unwrap(), MIGRATIONS.len());
    drop(conn);
    let conn = open(&path).unwrap();
    assert_eq!(schema_version(&conn).unwrap(), MIGRATIONS.len());
    assert_eq!(sync_state(&conn).unwrap().session, r#"{"step":"idle"}"#);
}

#[test]
fn an_old_version_file_is_migrated_with_its_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // The file as version 1 of the app left it, with a write still queued.
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), 1);
        conn.execute(
            "INSERT INTO pending_queue (item_type, entity_id, payload, state, enqueued_at)
             VALUES ('settings_change', 'units', '{\"key\":\"units\"}', 'queued', '2025-06-01T12:00:00Z')",
            [],
        )
        .unwrap();
        conn.execute("UPDATE sync_state SET cursor = 'c-1' WHERE id = 1", [])
            .unwrap();
        assert!(conn.prepare("SELECT last_error FROM sync_state").is_err());
    }
    let conn = open(&path).unwrap();
    assert_eq!(schema_version(&conn).unwrap(), 2);
    let state = sync_state(&conn).unwrap();
    assert_eq!(state.cursor.as_deref(), Some("c-1"));
    assert_eq!(state.consecutive_failures, 0);
    assert_eq!(state.last_error, None);
    assert_eq!(queued(&conn, 10).unwrap().len(), 1);
    assert!(drafts(&conn).unwrap().is_empty());
}

#[test]
fn a_failing_migration_leaves_the_file_at_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("db")).unwrap();
    let broken = [
        MIGRATIONS[0],
        "CREATE TABLE ok_so_far (x); SELECT * FROM no_such_table;",
    ];
    assert!(migrate(&mut conn, &broken).is_err());
    assert_eq!(schema_version(&conn).unwrap(), 1);
    // The half-run script's first statement was rolled back with it.
    assert!(conn.prepare("SELECT * FROM ok_so_far").is_err());
}

#[test]
fn the_queue_is_first_in_first_out_and_a_requeued_item_keeps_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db")).unwrap();
    let now = Utc::now();
    for i in 0..20 {
        enqueue(
            &conn,
            ItemType::Activity,
            &format!("a{i:02}"),
            &json!({"n": i}),
            now,
        )
        .unwrap();
    }
    let first = queued(&conn, 15).unwrap();
    let ids: Vec<_> = first.iter().map(|q| q.entity_id.clone()).collect();
    assert_eq!(ids, (0..15).map(|i| format!("a{i:02}")).collect::<Vec<_>>());
    let request = uuid::Uuid::new_v4();
    mark_in_flight(&conn, &first, request).unwrap();
    let in_flight = in_flight_batch(&conn).unwrap();
    assert_eq!(in_flight.len(), 15);
    assert!(in_flight.iter().all(|q| q.sync_request_id == Some(request)));
    assert_eq!(queued(&conn, 15).unwrap().len(), 5);
    // A transient refusal puts item 3 back ahead of the never-sent ones.
    requeue(&conn, first[3].queue_id).unwrap();
    assert_eq!(queued(&conn, 1).unwrap()[0].entity_id, "a03");
    reject(&conn, first[4].queue_id, "rpe: too high").unwrap();
    let rejected = rejected(&conn).unwrap();
    assert_eq!(rejected[0].entity_id, "a04");
    assert_eq!(rejected[0].rejection.as_deref(), Some("rpe: too high"));
    assert!(!has_unsent(&conn, ItemType::Activity, "a04").unwrap());
    assert!(has_unsent(&conn, ItemType::Activity, "a05").unwrap());
    assert_eq!(
        unsent_counts(&conn).unwrap(),
        vec![(ItemType::Activity, 19)]
    );
}

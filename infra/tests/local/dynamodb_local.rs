//! DynamoDB Local really starts, answers, persists and stops.

use trainsync_infra::dynamodb_local::{self, DynamoDbLocal, Options, Storage};
use trainsync_infra::{local_config, local_system};

#[tokio::test]
async fn starts_answers_list_tables_and_stop_frees_the_port() {
    let local = DynamoDbLocal::start(Options::in_memory())
        .await
        .expect("DynamoDB Local starts");
    let port = local.port();
    assert_eq!(local.endpoint(), format!("http://127.0.0.1:{port}"));
    assert_eq!(local.storage(), &Storage::InMemory);
    assert!(
        local.output().contains(dynamodb_local::BANNER),
        "banner missing from: {}",
        local.output()
    );
    let tables = dynamodb_local::list_tables(port)
        .await
        .expect("ListTables answers");
    assert_eq!(tables.trim(), r#"{"TableNames":[]}"#);
    assert!(!dynamodb_local::port_is_free(port));

    local.stop().expect("stops");
    assert!(
        dynamodb_local::port_is_free(port),
        "port {port} still taken"
    );
    assert!(dynamodb_local::list_tables(port).await.is_err());
}

#[tokio::test]
async fn drop_stops_the_process() {
    let local = DynamoDbLocal::start(Options::in_memory())
        .await
        .expect("DynamoDB Local starts");
    let port = local.port();
    drop(local);
    assert!(
        dynamodb_local::port_is_free(port),
        "port {port} still taken"
    );
}

#[tokio::test]
async fn a_taken_port_is_refused_clearly() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let error = DynamoDbLocal::start(Options::in_memory().with_port(port))
        .await
        .expect_err("port is taken");
    assert!(
        matches!(error, dynamodb_local::Error::PortInUse { port: p } if p == port),
        "{error}"
    );
}

#[tokio::test]
async fn db_path_persists_tables_across_restarts() {
    let dir = std::env::temp_dir().join(format!(
        "trainsync-ddb-persist-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let local = DynamoDbLocal::start(Options::persistent(&dir))
        .await
        .expect("DynamoDB Local starts on disk");
    let mut config = local_config::from_env_with_endpoint(&local.endpoint()).expect("local config");
    config.table_name = "persisted".to_owned();
    local_system::create_table(&config)
        .await
        .expect("table created");
    local.stop().expect("stops");

    let again = DynamoDbLocal::start(Options::persistent(&dir))
        .await
        .expect("restarts on the same folder");
    let tables = dynamodb_local::list_tables(again.port())
        .await
        .expect("ListTables answers");
    assert!(tables.contains("\"persisted\""), "{tables}");
    again.stop().expect("stops");
    std::fs::remove_dir_all(&dir).expect("data folder removed");
}

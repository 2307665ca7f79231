//! `template.yaml` and the code agree: the table the code creates locally is
//! the table SAM deploys, and every endpoint has its function and route.

use serde_yaml::Value;
use sync_core::handlers::Endpoint;
use sync_core::store::dynamo::schema;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml parses")
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, r)| (name.as_str().unwrap(), r))
        .collect()
}

fn strs(value: &Value, field: &str) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("expected a list, got {value:?}"))
        .iter()
        .map(|v| v[field].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_deployed_table_is_the_table_the_code_creates() {
    let template = template();
    let tables = resources_of_type(&template, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let table = &tables[0].1["Properties"];

    let attributes: Vec<(String, String)> = table["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().to_owned(),
                a["AttributeType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = schema::attribute_definitions()
        .into_iter()
        .map(|(name, kind)| (name.to_owned(), kind.as_str().to_owned()))
        .collect();
    assert_eq!(attributes, expected);

    assert_eq!(
        strs(&table["KeySchema"], "AttributeName"),
        [schema::PK, schema::SK]
    );
    assert_eq!(strs(&table["KeySchema"], "KeyType"), ["HASH", "RANGE"]);

    let indexes = table["LocalSecondaryIndexes"].as_sequence().unwrap();
    assert_eq!(indexes.len(), 1);
    assert_eq!(indexes[0]["IndexName"].as_str(), Some(schema::LSI1));
    assert_eq!(
        strs(&indexes[0]["KeySchema"], "AttributeName"),
        [schema::PK, schema::LSI1_SK]
    );
    assert_eq!(
        indexes[0]["Projection"]["ProjectionType"].as_str(),
        Some("KEYS_ONLY")
    );
    assert!(
        table["GlobalSecondaryIndexes"].is_null(),
        "the code creates no GSI"
    );

    assert_eq!(table["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"].as_str(),
        Some(schema::STREAM_VIEW.as_str())
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(schema::TTL_ATTRIBUTE)
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(table["SSESpecification"]["SSEType"].as_str(), Some("KMS"));
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
}

#[test]
fn every_endpoint_has_its_function_and_route() {
    let template = template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    for endpoint in Endpoint::ALL {
        let binary = format!("sync-{}", endpoint.path().trim_start_matches("/sync/"));
        let (name, function) = functions
            .iter()
            .find(|(_, f)| {
                f["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary.as_str())
            })
            .unwrap_or_else(|| panic!("no function builds {binary}"));
        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}"
        );
        assert_eq!(
            function["Properties"]["CodeUri"].as_str(),
            Some(format!("functions/{binary}").as_str()),
            "{name}"
        );
        let package = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");
        assert!(
            std::path::Path::new(&format!("{package}/{binary}/Cargo.toml")).exists(),
            "{binary} is a package"
        );
        let events = function["Properties"]["Events"]
            .as_mapping()
            .expect("events");
        let routed = events.values().any(|e| {
            e["Type"].as_str() == Some("HttpApi")
                && e["Properties"]["Path"].as_str() == Some(endpoint.path())
                && e["Properties"]["Method"].as_str() == Some(endpoint.method().as_str())
        });
        assert!(
            routed,
            "{name} serves {} {}",
            endpoint.method(),
            endpoint.path()
        );
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    for variable in ["TABLE_NAME", "JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL"] {
        assert!(
            !globals["Environment"]["Variables"][variable].is_null(),
            "{variable} is configured"
        );
    }
}

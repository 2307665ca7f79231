//! `template.yaml` and the code agree: the table the code creates locally is
//! the table SAM deploys, every endpoint has its function and route, the
//! ingest function has none, and every function's policy stays on the table.

use std::collections::BTreeSet;

use serde_yaml::Value;
use sync_core::config::Config;
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

/// The function package (and binary) serving `endpoint`; a new endpoint
/// breaks the build here until it has one.
fn binary(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Check => "sync-check",
        Endpoint::Upload => "sync-upload",
        Endpoint::Download => "sync-download",
        Endpoint::Complete => "sync-complete",
        Endpoint::Status => "sync-status",
        Endpoint::Conflicts => "sync-conflicts",
        Endpoint::ConflictUndo => "sync-conflict-undo",
        Endpoint::Track => "sync-tracks",
        Endpoint::Reference => "sync-reference",
    }
}

/// The function without a route, invoked by backend services.
const INGEST_BINARY: &str = "sync-ingest";

/// The function that builds `binary`, by name.
fn function<'a>(template: &'a Value, binary: &str) -> (&'a str, &'a Value) {
    resources_of_type(template, "AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
        .unwrap_or_else(|| panic!("no function builds {binary}"))
}

/// A function's build: cargo-lambda, from its own workspace package.
fn assert_built_from_its_package(name: &str, function: &Value, binary: &str) {
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
    let manifest = std::fs::read_to_string(format!("{package}/{binary}/Cargo.toml"))
        .unwrap_or_else(|e| panic!("{binary} is a package: {e}"));
    assert!(
        manifest.contains(&format!("name = \"{binary}\"")),
        "the package in functions/{binary} is named {binary}"
    );
}

/// A YAML value with its CloudFormation tags, e.g. `!GetAtt SyncTable.Arn`.
fn render(value: &Value) -> String {
    match value {
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, render(&tagged.value)),
        Value::String(text) => text.clone(),
        Value::Sequence(items) => items.iter().map(render).collect::<Vec<_>>().join(" "),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// A string or a list of strings, as IAM allows for `Action` and `Resource`.
fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
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
    for endpoint in Endpoint::ALL {
        let binary = binary(endpoint);
        let (name, function) = function(&template, binary);
        assert_built_from_its_package(name, function, binary);
        // Exactly one event: this endpoint's route on the API.
        let events = function["Properties"]["Events"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name} has no events"));
        assert_eq!(events.len(), 1, "{name} has one route");
        let event = events.values().next().expect("one event");
        assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{name}");
        assert_eq!(
            render(&event["Properties"]["ApiId"]),
            "!Ref SyncApi",
            "{name}"
        );
        assert_eq!(
            (
                event["Properties"]["Method"].as_str(),
                event["Properties"]["Path"].as_str()
            ),
            (Some(endpoint.method().as_str()), Some(endpoint.path())),
            "{name}"
        );
        assert_eq!(
            function["Properties"]["Description"].as_str(),
            Some(format!("{} {}", endpoint.method(), endpoint.path()).as_str()),
            "{name}"
        );
    }
    // And nothing else: every function is an endpoint's or the ingest function.
    let mut expected: BTreeSet<&str> = Endpoint::ALL.into_iter().map(binary).collect();
    expected.insert(INGEST_BINARY);
    let in_template: BTreeSet<&str> = resources_of_type(&template, "AWS::Serverless::Function")
        .iter()
        .map(|(name, f)| {
            f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} names no binary"))
        })
        .collect();
    assert_eq!(in_template, expected);
    let packages: BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../functions"))
            .expect("functions/")
            .map(|entry| {
                entry
                    .expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
    let expected: BTreeSet<String> = expected.into_iter().map(str::to_owned).collect();
    assert_eq!(packages, expected, "every function package is deployed");

    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    for variable in [
        "TABLE_NAME",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWKS_URL",
        "BRAIN",
    ] {
        assert!(
            !globals["Environment"]["Variables"][variable].is_null(),
            "{variable} is configured"
        );
    }
}

#[test]
fn the_ingest_function_has_no_route_and_is_invoked_through_iam() {
    let template = template();
    let (name, ingest) = function(&template, INGEST_BINARY);
    assert_built_from_its_package(name, ingest, INGEST_BINARY);
    assert!(
        ingest["Properties"]["Events"].is_null(),
        "{name} is not reachable through the API"
    );
    // A timed-out invocation must not outlive its idempotency claim's in-progress window.
    let timeout = ingest["Properties"]["Timeout"].as_i64().expect("a timeout");
    assert!(
        timeout < sync_core::limits::IDEMPOTENCY_IN_PROGRESS_SECS,
        "{name}: {timeout} s"
    );

    // The managed policy callers attach allows exactly invoking it.
    let statements =
        &template["Resources"]["IngestInvokePolicy"]["Properties"]["PolicyDocument"]["Statement"];
    let statements = statements.as_sequence().expect("statements");
    assert_eq!(statements.len(), 1);
    assert_eq!(render(&statements[0]["Action"]), "lambda:InvokeFunction");
    assert_eq!(
        render(&statements[0]["Resource"]),
        format!("!GetAtt {name}.Arn")
    );
    assert_eq!(
        render(&template["Outputs"]["IngestFunctionArn"]["Value"]),
        format!("!GetAtt {name}.Arn")
    );
    assert_eq!(
        render(&template["Outputs"]["IngestInvokePolicyArn"]["Value"]),
        "!Ref IngestInvokePolicy"
    );

    // BRAIN: every value the template allows is one the code accepts.
    let brain = &template["Parameters"]["Brain"];
    assert_eq!(
        render(&template["Globals"]["Function"]["Environment"]["Variables"]["BRAIN"]),
        "!Ref Brain"
    );
    let config = |value: &str| {
        let value = value.to_owned();
        Config::from_lookup(move |name| match name {
            "TABLE_NAME" | "JWT_ISSUER" | "JWT_AUDIENCE" => Some("x".to_owned()),
            "JWKS_URL" => Some("https://example.com/jwks.json".to_owned()),
            "BRAIN" => Some(value.clone()),
            _ => None,
        })
    };
    let allowed: Vec<&str> = brain["AllowedValues"]
        .as_sequence()
        .expect("AllowedValues")
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect();
    assert_eq!(allowed, ["reference", "off"]);
    assert!(config("reference").expect("accepted").brain);
    assert!(!config("off").expect("accepted").brain);
    assert!(
        config("on").is_err(),
        "the code refuses values the template would not allow"
    );
    assert_eq!(brain["Default"].as_str(), Some("reference"));
}

#[test]
fn every_function_policy_stays_on_the_table_and_its_key() {
    let template = template();
    let table = "!GetAtt SyncTable.Arn";
    let index = "!Sub ${SyncTable.Arn}/index/*";
    let key = "!GetAtt TableKey.Arn";
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let policies = function["Properties"]["Policies"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has no policies"));
        let mut dynamodb_actions = BTreeSet::new();
        for policy in policies {
            let statements = policy["Statement"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{name}: inline statements only, no managed policies"));
            for statement in statements {
                let sid = render(&statement["Sid"]);
                assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{name} {sid}");
                let resources: Vec<String> = one_or_many(&statement["Resource"])
                    .into_iter()
                    .map(render)
                    .collect();
                for action in one_or_many(&statement["Action"]) {
                    let action = render(action);
                    if let Some(op) = action.strip_prefix("dynamodb:") {
                        assert!(
                            !op.contains('*'),
                            "{name} {sid}: {action} is not one operation"
                        );
                        dynamodb_actions.insert(op.to_owned());
                        let allowed: &[&str] = if op == "Query" {
                            &[table, index]
                        } else {
                            &[table]
                        };
                        for resource in &resources {
                            assert!(
                                allowed.contains(&resource.as_str()),
                                "{name} {sid}: {action} on {resource}"
                            );
                        }
                    } else if action.starts_with("kms:") {
                        assert_eq!(resources, [key], "{name} {sid}: {action}");
                        assert!(
                            !statement["Condition"]["StringEquals"]["kms:ViaService"].is_null(),
                            "{name} {sid}: the key is used through DynamoDB only"
                        );
                    } else {
                        panic!("{name} {sid}: unexpected action {action}");
                    }
                }
            }
        }
        assert!(!dynamodb_actions.is_empty(), "{name} reaches the table");
    }
}

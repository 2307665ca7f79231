//! `template.yaml` and the code agree: the table the code creates locally is
//! the table SAM deploys, every endpoint has its function and route, the
//! ingest function has none, the alert fan-out reads exactly the stream
//! records the code expects, the push and signing settings reach the code in
//! a shape it accepts, no function's environment holds a secret, and every
//! function's policy stays on the table, its key, (with pushes on) the SNS
//! endpoints of the configured applications and (the refresh function only)
//! the access-token signing key.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;
use sync_core::config::{AuthConfig, Config, PushConfig, SigningKey};
use sync_core::handlers::Endpoint;
use sync_core::store::dynamo::schema;
use trainsync_infra::stream_filter::FANOUT_FILTER_PATTERN;

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
        Endpoint::DeviceRegister | Endpoint::DeviceList | Endpoint::DeviceRevoke => "devices",
        Endpoint::AuthRefresh => "auth-refresh",
    }
}

/// The function without a route, invoked by backend services.
const INGEST_BINARY: &str = "sync-ingest";

/// The function the table's stream invokes for critical alerts.
const FANOUT_BINARY: &str = "alerts-fanout";

/// The functions that talk to the push provider (and so get its settings).
const PUSH_BINARIES: [&str; 3] = ["devices", "auth-refresh", FANOUT_BINARY];

/// Each push platform's condition and application ARN parameter.
const PLATFORM_PARAMETERS: [(&str, &str); 2] = [
    ("HasApns", "ApnsPlatformApplicationArn"),
    ("HasFcm", "FcmPlatformApplicationArn"),
];

/// The endpoints `binary` serves, in `Endpoint::ALL` order.
fn endpoints_of(binary: &str) -> Vec<Endpoint> {
    Endpoint::ALL
        .into_iter()
        .filter(|e| self::binary(*e) == binary)
        .collect()
}

/// `METHOD /path`, as function descriptions name routes.
fn route(endpoint: Endpoint) -> String {
    format!("{} {}", endpoint.method(), endpoint.path())
}

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

/// Every `HttpApi` event of the template, as (method, path) -> the functions with it.
fn http_routes(template: &Value) -> BTreeMap<(String, String), Vec<String>> {
    let mut routes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (name, function) in resources_of_type(template, "AWS::Serverless::Function") {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let properties = &event["Properties"];
            let method = properties["Method"].as_str().expect("a method").to_owned();
            let path = properties["Path"].as_str().expect("a path").to_owned();
            routes
                .entry((method, path))
                .or_default()
                .push(name.to_owned());
        }
    }
    routes
}

#[test]
fn every_endpoint_has_exactly_one_route() {
    let template = template();
    let routes = http_routes(&template);
    for endpoint in Endpoint::ALL {
        let key = (endpoint.method().to_string(), endpoint.path().to_owned());
        let functions = routes.get(&key).cloned().unwrap_or_default();
        assert_eq!(
            functions.len(),
            1,
            "{}: routed to {functions:?}",
            route(endpoint)
        );
    }
    let in_code: BTreeSet<(String, String)> = Endpoint::ALL
        .into_iter()
        .map(|e| (e.method().to_string(), e.path().to_owned()))
        .collect();
    let in_template: BTreeSet<(String, String)> = routes.keys().cloned().collect();
    assert_eq!(in_template, in_code, "the API routes exactly the endpoints");
}

#[test]
fn every_endpoint_has_its_function_and_route() {
    let template = template();
    let binaries: BTreeSet<&str> = Endpoint::ALL.into_iter().map(binary).collect();
    for binary in &binaries {
        let (name, function) = function(&template, binary);
        assert_built_from_its_package(name, function, binary);
        let endpoints = endpoints_of(binary);
        // Its events are exactly its endpoints' routes on the API.
        let events = function["Properties"]["Events"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name} has no events"));
        assert_eq!(events.len(), endpoints.len(), "{name}: one event per route");
        let mut routes = BTreeSet::new();
        for event in events.values() {
            assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{name}");
            assert_eq!(
                render(&event["Properties"]["ApiId"]),
                "!Ref SyncApi",
                "{name}"
            );
            routes.insert((
                event["Properties"]["Method"].as_str().map(str::to_owned),
                event["Properties"]["Path"].as_str().map(str::to_owned),
            ));
        }
        let expected: BTreeSet<(Option<String>, Option<String>)> = endpoints
            .iter()
            .map(|e| (Some(e.method().to_string()), Some(e.path().to_owned())))
            .collect();
        assert_eq!(routes, expected, "{name}");
        let description = endpoints
            .iter()
            .map(|e| route(*e))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            function["Properties"]["Description"].as_str(),
            Some(description.as_str()),
            "{name}"
        );
    }

    // The device endpoints are one function (the code serves them together).
    let devices: BTreeSet<&str> = Endpoint::DEVICES.into_iter().map(binary).collect();
    assert_eq!(devices.len(), 1, "the device endpoints share a function");
    for endpoint in Endpoint::ALL {
        assert_eq!(
            Endpoint::DEVICES.contains(&endpoint),
            devices.contains(binary(endpoint)),
            "{}: Endpoint::DEVICES and the template disagree",
            route(endpoint)
        );
    }
    let (name, _) = function(&template, devices.first().expect("one"));
    let routes = http_routes(&template);
    for endpoint in Endpoint::DEVICES {
        let key = (endpoint.method().to_string(), endpoint.path().to_owned());
        assert_eq!(routes[&key], [name], "{}", route(endpoint));
    }

    // And nothing else: every function is an endpoint's, the ingest function
    // or the alert fan-out.
    let mut expected = binaries;
    expected.insert(INGEST_BINARY);
    expected.insert(FANOUT_BINARY);
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
        timeout < trainsync_protocol::limits::IDEMPOTENCY_IN_PROGRESS_SECS,
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

/// A policy statement, unwrapped from `!If [condition, statement, !Ref AWS::NoValue]`.
fn unwrap_statement<'a>(name: &str, statement: &'a Value) -> (Option<&'a str>, &'a Value) {
    match statement {
        Value::Tagged(tagged) if tagged.tag == "If" => {
            let parts = tagged
                .value
                .as_sequence()
                .unwrap_or_else(|| panic!("{name}: !If [condition, statement, else]"));
            assert_eq!(parts.len(), 3, "{name}: !If [condition, statement, else]");
            assert_eq!(
                render(&parts[2]),
                "!Ref AWS::NoValue",
                "{name}: a conditional statement is absent otherwise"
            );
            (
                Some(parts[0].as_str().expect("a condition name")),
                &parts[1],
            )
        }
        other => (None, other),
    }
}

/// Every statement of a function's inline policies, with its condition.
fn statements<'a>(name: &str, function: &'a Value) -> Vec<(Option<&'a str>, &'a Value)> {
    let policies = function["Properties"]["Policies"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name} has no policies"));
    policies
        .iter()
        .flat_map(|policy| {
            policy["Statement"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{name}: inline statements only, no managed policies"))
        })
        .map(|statement| unwrap_statement(name, statement))
        .collect()
}

/// The SNS actions a function needs when pushes are on (exactly these).
fn sns_actions(binary: &str) -> BTreeSet<&'static str> {
    let actions: &[&str] = match binary {
        // Registration creates or updates the device's endpoint; replaced and
        // revoked devices' endpoints are deleted.
        "devices" => &[
            "CreatePlatformEndpoint",
            "SetEndpointAttributes",
            "DeleteEndpoint",
        ],
        // A reused refresh token revokes its device.
        "auth-refresh" => &["DeleteEndpoint"],
        FANOUT_BINARY => &["Publish"],
        _ => &[],
    };
    actions.iter().copied().collect()
}

/// The table operations of the functions whose code is all about one thing
/// (exactly these); the others are checked for the revocation read only.
fn exact_table_actions(binary: &str) -> Option<BTreeSet<&'static str>> {
    let actions: &[&str] = match binary {
        "devices" => &["GetItem", "UpdateItem", "Query"],
        // TransactWriteItems (rotation: Update + ConditionCheck) is
        // authorised by the actions it contains.
        "auth-refresh" => &["GetItem", "UpdateItem", "ConditionCheckItem"],
        FANOUT_BINARY => &["Query", "PutItem", "UpdateItem", "DeleteItem"],
        _ => return None,
    };
    Some(actions.iter().copied().collect())
}

#[test]
fn every_function_policy_stays_on_the_table_and_its_key() {
    let template = template();
    let table = "!GetAtt SyncTable.Arn";
    let index = "!Sub ${SyncTable.Arn}/index/*";
    let key = "!GetAtt TableKey.Arn";
    let endpoints = PLATFORM_PARAMETERS.map(|(condition, parameter)| {
        format!(
            "!If {condition} !Join  !Join :endpoint/ !Split :app/ !Ref {parameter} /* !Ref AWS::NoValue"
        )
    });
    let applications = [
        "!If HasApns !Ref ApnsPlatformApplicationArn !Ref AWS::NoValue",
        "!If HasFcm !Ref FcmPlatformApplicationArn !Ref AWS::NoValue",
    ];
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} names no binary"));
        let mut dynamodb_actions = BTreeSet::new();
        let mut kms_actions = BTreeSet::new();
        let mut sns = BTreeSet::new();
        for (condition, statement) in statements(name, function) {
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
                    assert_eq!(condition, None, "{name} {sid}: the table is always used");
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
                } else if action == "kms:Sign" {
                    // Access tokens: the refresh function alone signs, with
                    // the configured key and the algorithm the code uses.
                    assert_eq!(binary, "auth-refresh", "{name} {sid}: {action}");
                    assert_eq!(condition, Some("HasSigningKey"), "{name} {sid}");
                    assert_eq!(resources, ["!Ref SigningKmsKeyArn"], "{name} {sid}");
                    let only = &statement["Condition"]["StringEquals"];
                    assert_eq!(
                        (
                            only["kms:SigningAlgorithm"].as_str(),
                            only["kms:MessageType"].as_str()
                        ),
                        (Some("RSASSA_PKCS1_V1_5_SHA_256"), Some("RAW")),
                        "{name} {sid}"
                    );
                } else if action.starts_with("kms:") {
                    assert_eq!(condition, None, "{name} {sid}");
                    assert_eq!(resources, [key], "{name} {sid}: {action}");
                    assert!(
                        !statement["Condition"]["StringEquals"]["kms:ViaService"].is_null(),
                        "{name} {sid}: the key is used through DynamoDB only"
                    );
                    kms_actions.insert(action);
                } else if let Some(op) = action.strip_prefix("sns:") {
                    assert_eq!(
                        condition,
                        Some("HasPush"),
                        "{name} {sid}: {action} only while pushes are on"
                    );
                    sns.insert(op.to_owned());
                    if op == "CreatePlatformEndpoint" {
                        // Only the configured platform applications.
                        assert_eq!(resources, applications, "{name} {sid}: {action}");
                    } else {
                        // Only endpoints of the configured applications.
                        assert_eq!(resources, endpoints, "{name} {sid}: {action}");
                    }
                } else {
                    panic!("{name} {sid}: unexpected action {action}");
                }
            }
        }
        assert!(!dynamodb_actions.is_empty(), "{name} reaches the table");
        assert!(
            kms_actions.contains("kms:Decrypt"),
            "{name} reads through the table's key"
        );
        let expected_sns: BTreeSet<String> =
            sns_actions(binary).into_iter().map(str::to_owned).collect();
        assert_eq!(sns, expected_sns, "{name}: SNS actions");
        if let Some(expected) = exact_table_actions(binary) {
            let expected: BTreeSet<String> = expected.into_iter().map(str::to_owned).collect();
            assert_eq!(dynamodb_actions, expected, "{name}: table actions");
        }
        // Every authenticated request reads the caller's device item to
        // refuse logged-out devices.
        let authenticated = endpoints_of(binary)
            .into_iter()
            .any(|e| e != Endpoint::AuthRefresh);
        if authenticated {
            assert!(
                dynamodb_actions.contains("GetItem"),
                "{name}: the revocation check reads the device item"
            );
        }
    }
}

// ------------------------------------------------------------------ the fan-out

/// `DELIVERY_LEASE_SECS` (crate-private in `store::dynamo::deliveries`), read from the source.
fn delivery_lease_secs() -> i64 {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/server/src/store/dynamo/deliveries.rs"
    );
    let source = std::fs::read_to_string(path).expect("deliveries.rs");
    let rest = source
        .split("pub const DELIVERY_LEASE_SECS: i64 = ")
        .nth(1)
        .expect("DELIVERY_LEASE_SECS is defined");
    rest.split(';')
        .next()
        .and_then(|n| n.trim().replace('_', "").parse().ok())
        .expect("DELIVERY_LEASE_SECS is a number")
}

#[test]
fn the_fanout_takes_only_critical_alerts_from_the_stream_and_keeps_failures() {
    let template = template();
    let (name, fanout) = function(&template, FANOUT_BINARY);
    assert_built_from_its_package(name, fanout, FANOUT_BINARY);
    let properties = &fanout["Properties"];

    // A timed-out invocation must have stopped before its claims' lease ends.
    let timeout = properties["Timeout"].as_i64().expect("a timeout");
    let lease = delivery_lease_secs();
    assert!(
        timeout < lease,
        "{name}: timeout {timeout} s, lease {lease} s"
    );

    // One event: the table's stream; no route.
    let events = properties["Events"].as_mapping().expect("events");
    assert_eq!(events.len(), 1, "{name}: the stream only");
    let event = events.values().next().expect("one event");
    assert_eq!(event["Type"].as_str(), Some("DynamoDB"), "{name}");
    let stream = &event["Properties"];
    assert_eq!(render(&stream["Stream"]), "!GetAtt SyncTable.StreamArn");
    assert_eq!(stream["StartingPosition"].as_str(), Some("LATEST"));
    assert_eq!(
        stream["MaximumBatchingWindowInSeconds"]
            .as_i64()
            .unwrap_or(0),
        0,
        "critical alerts are pushed at once"
    );

    // Exactly the records the code (and the local gateway) expects.
    let filters = stream["FilterCriteria"]["Filters"]
        .as_sequence()
        .expect("FilterCriteria.Filters");
    assert_eq!(filters.len(), 1, "one filter (several would be OR'ed)");
    let pattern: serde_json::Value = serde_json::from_str(
        filters[0]["Pattern"]
            .as_str()
            .expect("the pattern is a JSON string"),
    )
    .expect("the pattern is JSON");
    let expected: serde_json::Value =
        serde_json::from_str(FANOUT_FILTER_PATTERN).expect("FANOUT_FILTER_PATTERN is JSON");
    assert_eq!(pattern, expected, "the filter is FANOUT_FILTER_PATTERN");
    // The filter reads the new image, which the stream must carry.
    assert!(FANOUT_FILTER_PATTERN.contains("NewImage"));
    assert_eq!(schema::STREAM_VIEW.as_str(), "NEW_IMAGE");

    // Partial batch responses: only the failed record and what follows it
    // are retried, a bad record is isolated, and it is given up on in bounded
    // time into a durable queue instead of blocking the shard.
    let response_types: Vec<&str> = stream["FunctionResponseTypes"]
        .as_sequence()
        .expect("FunctionResponseTypes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        response_types.contains(&"ReportBatchItemFailures"),
        "{response_types:?}"
    );
    assert_eq!(stream["BisectBatchOnFunctionError"].as_bool(), Some(true));
    let retries = stream["MaximumRetryAttempts"]
        .as_i64()
        .expect("MaximumRetryAttempts (the default retries until the record expires)");
    assert!(
        (1..=10).contains(&retries),
        "MaximumRetryAttempts {retries}"
    );
    let age = stream["MaximumRecordAgeInSeconds"]
        .as_i64()
        .expect("MaximumRecordAgeInSeconds (the default is the stream's 24 hours)");
    assert!(
        (60..=86_400).contains(&age),
        "MaximumRecordAgeInSeconds {age}"
    );
    let on_failure = &stream["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"].as_str(), Some("SQS"));
    let destination = render(&on_failure["Destination"]);
    let queue = destination
        .strip_prefix("!GetAtt ")
        .and_then(|d| d.strip_suffix(".Arn"))
        .unwrap_or_else(|| panic!("the destination is a queue of the stack: {destination}"));
    let queue_resource = &template["Resources"][queue];
    assert_eq!(queue_resource["Type"].as_str(), Some("AWS::SQS::Queue"));
    assert_eq!(
        queue_resource["Properties"]["SqsManagedSseEnabled"].as_bool(),
        Some(true),
        "{queue} is encrypted"
    );
    assert_eq!(
        queue_resource["Properties"]["MessageRetentionPeriod"].as_i64(),
        Some(14 * 24 * 3600),
        "{queue} keeps failures as long as SQS can"
    );
    // Someone hears of it.
    let alarmed = resources_of_type(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .any(|(_, alarm)| {
            let p = &alarm["Properties"];
            p["Namespace"].as_str() == Some("AWS/SQS")
                && p["MetricName"].as_str() == Some("ApproximateNumberOfMessagesVisible")
                && p["Dimensions"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|d| render(&d["Value"]) == format!("!GetAtt {queue}.QueueName"))
        });
    assert!(alarmed, "an alarm watches {queue}");
}

// ------------------------------------------------------------------ settings

/// Evaluates the intrinsics the settings and policies use (`!Ref`,
/// `!GetAtt`, `!If`, a one-argument `!Sub`, `!Join` of a list or a `!Split`,
/// and the condition functions) for given parameter values; `None` is
/// `AWS::NoValue`, a resource (or its attribute) its logical id (and
/// attribute) in angle brackets.
struct Stack<'a> {
    template: &'a Value,
    params: BTreeMap<String, String>,
}

impl<'a> Stack<'a> {
    fn new(template: &'a Value, params: &[(&str, &str)]) -> Self {
        let mut all = BTreeMap::from([
            (
                "JwtIssuer".to_owned(),
                "https://issuer.example.com".to_owned(),
            ),
            ("JwtAudience".to_owned(), "trainsync".to_owned()),
            (
                "JwksUrl".to_owned(),
                "https://issuer.example.com/.well-known/jwks.json".to_owned(),
            ),
        ]);
        for (name, value) in params {
            all.insert((*name).to_owned(), (*value).to_owned());
        }
        Self {
            template,
            params: all,
        }
    }

    fn reference(&self, name: &str) -> Option<String> {
        match name {
            "AWS::NoValue" => return None,
            "AWS::Partition" => return Some("aws".to_owned()),
            "AWS::Region" => return Some("eu-central-1".to_owned()),
            "AWS::AccountId" => return Some("123456789012".to_owned()),
            _ => {}
        }
        // A resource, or one of its attributes (`${SyncTable.Arn}` in a `!Sub`).
        let resource = name.split('.').next().unwrap_or(name);
        if !self.template["Resources"][resource].is_null() {
            return Some(format!("<{name}>"));
        }
        let value = self.params.get(name).cloned().or_else(|| {
            self.template["Parameters"][name]["Default"]
                .as_str()
                .map(str::to_owned)
        });
        Some(value.unwrap_or_else(|| panic!("no value for {name}")))
    }

    fn value(&self, value: &Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            Value::Tagged(tagged) => match tagged.tag.to_string().as_str() {
                "!Ref" => self.reference(tagged.value.as_str().expect("!Ref name")),
                "!If" => {
                    let args = tagged.value.as_sequence().expect("!If arguments");
                    let name = args[0].as_str().expect("a condition name");
                    self.value(&args[if self.condition(name) { 1 } else { 2 }])
                }
                "!GetAtt" => Some(format!(
                    "<{}>",
                    tagged.value.as_str().expect("Resource.Attribute")
                )),
                "!Join" => {
                    let args = tagged.value.as_sequence().expect("!Join [delimiter, list]");
                    let delimiter = args[0].as_str().expect("a delimiter");
                    Some(self.list(&args[1]).join(delimiter))
                }
                "!Sub" => {
                    let mut text = tagged.value.as_str().expect("one-argument !Sub").to_owned();
                    while let Some(start) = text.find("${") {
                        let end = start + text[start..].find('}').expect("a closing brace");
                        let name = text[start + 2..end].to_owned();
                        let replacement = self.reference(&name).expect("a value");
                        text.replace_range(start..=end, &replacement);
                    }
                    Some(text)
                }
                other => panic!("cannot evaluate {other}"),
            },
            other => panic!("cannot evaluate {other:?}"),
        }
    }

    /// A list: a sequence of values (`AWS::NoValue` dropped) or a `!Split`.
    fn list(&self, value: &Value) -> Vec<String> {
        match value {
            Value::Sequence(items) => items.iter().filter_map(|v| self.value(v)).collect(),
            Value::Tagged(tagged) if tagged.tag == "Split" => {
                let args = tagged
                    .value
                    .as_sequence()
                    .expect("!Split [delimiter, text]");
                let delimiter = args[0].as_str().expect("a delimiter");
                let text = self.value(&args[1]).expect("a text to split");
                text.split(delimiter).map(str::to_owned).collect()
            }
            other => panic!("not a list: {other:?}"),
        }
    }

    fn condition(&self, name: &str) -> bool {
        let condition = &self.template["Conditions"][name];
        assert!(!condition.is_null(), "no condition {name}");
        self.truth(condition)
    }

    fn truth(&self, value: &Value) -> bool {
        let Value::Tagged(tagged) = value else {
            panic!("not a condition: {value:?}");
        };
        let args = || tagged.value.as_sequence().expect("arguments");
        match tagged.tag.to_string().as_str() {
            "!Not" => !self.truth(&args()[0]),
            "!And" => args().iter().all(|a| self.truth(a)),
            "!Or" => args().iter().any(|a| self.truth(a)),
            "!Equals" => self.value(&args()[0]) == self.value(&args()[1]),
            "!Condition" => self.condition(tagged.value.as_str().expect("a condition name")),
            other => panic!("cannot evaluate {other}"),
        }
    }

    /// A function's environment: the globals, overlaid with its own.
    fn environment(&self, function: &Value) -> BTreeMap<String, String> {
        let mut environment = BTreeMap::new();
        for variables in [
            &self.template["Globals"]["Function"]["Environment"]["Variables"],
            &function["Properties"]["Environment"]["Variables"],
        ] {
            for (name, value) in variables.as_mapping().into_iter().flatten() {
                let name = name.as_str().expect("a variable name").to_owned();
                match self.value(value) {
                    Some(value) => environment.insert(name, value),
                    None => environment.remove(&name),
                };
            }
        }
        environment
    }

    /// The resources a function's policy grants `action` on, as deployed.
    fn granted(&self, name: &str, function: &Value, action: &str) -> Vec<String> {
        let mut granted = Vec::new();
        for (condition, statement) in statements(name, function) {
            if condition.is_some_and(|c| !self.condition(c)) {
                continue;
            }
            if one_or_many(&statement["Action"])
                .into_iter()
                .any(|a| a.as_str() == Some(action))
            {
                granted.extend(
                    one_or_many(&statement["Resource"])
                        .into_iter()
                        .filter_map(|r| self.value(r)),
                );
            }
        }
        granted
    }
}

fn config_of(name: &str, environment: &BTreeMap<String, String>) -> Config {
    Config::from_lookup(|variable| environment.get(variable).cloned())
        .unwrap_or_else(|e| panic!("{name} refuses its environment: {e} ({environment:?})"))
}

#[test]
fn push_settings_reach_the_code_in_a_shape_it_accepts() {
    let template = template();
    let apns = "arn:aws:sns:eu-central-1:123456789012:app/APNS/trainsync";
    let fcm = "arn:aws:sns:eu-central-1:123456789012:app/GCM/trainsync";
    for (apns, fcm) in [("", ""), (apns, ""), ("", fcm), (apns, fcm)] {
        let stack = Stack::new(
            &template,
            &[
                ("ApnsPlatformApplicationArn", apns),
                ("FcmPlatformApplicationArn", fcm),
            ],
        );
        let configured: Vec<String> = [apns, fcm]
            .into_iter()
            .filter(|arn| !arn.is_empty())
            .map(str::to_owned)
            .collect();
        let push = if configured.is_empty() {
            PushConfig::Off
        } else {
            PushConfig::Sns {
                apns_application_arn: Some(apns.to_owned()).filter(|a| !a.is_empty()),
                fcm_application_arn: Some(fcm.to_owned()).filter(|a| !a.is_empty()),
            }
        };
        for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
            let binary = function["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("a binary");
            let config = config_of(name, &stack.environment(function));
            let expected = if PUSH_BINARIES.contains(&binary) {
                push.clone()
            } else {
                PushConfig::Off
            };
            assert_eq!(
                config.push, expected,
                "{name} with APNs {apns:?}, FCM {fcm:?}"
            );
            // As deployed, the policy names only the configured applications
            // and grants nothing on SNS while pushes are off.
            for action in sns_actions(binary) {
                let granted = stack.granted(name, function, &format!("sns:{action}"));
                assert!(
                    granted.iter().all(|r| !r.is_empty()),
                    "{name}: sns:{action} on an empty ARN"
                );
                match (configured.is_empty(), action) {
                    (true, _) => assert_eq!(granted, Vec::<String>::new(), "{name}: sns:{action}"),
                    (false, "CreatePlatformEndpoint") => {
                        assert_eq!(granted, configured, "{name}: sns:{action}")
                    }
                    (false, _) => assert_eq!(
                        granted,
                        endpoint_grants(&configured),
                        "{name}: sns:{action}"
                    ),
                }
            }
        }
    }
}

/// What the endpoint grants should be for the configured application ARNs:
/// SNS names the endpoints of `arn:…:app/<PLATFORM>/<name>`
/// `arn:…:endpoint/<PLATFORM>/<name>/<id>`.
fn endpoint_grants(applications: &[String]) -> Vec<String> {
    applications
        .iter()
        .map(|arn| format!("{}/*", arn.replacen(":app/", ":endpoint/", 1)))
        .collect()
}

/// Whether IAM resource `pattern` (with at most a trailing `*`) covers `arn`.
fn covers(pattern: &str, arn: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            assert!(!prefix.contains('*'), "{pattern}: one trailing wildcard");
            arn.starts_with(prefix)
        }
        None => pattern == arn,
    }
}

/// With pushes on, the SNS endpoint permissions (create or update, delete,
/// publish) of every function reach the endpoints of the stack's own
/// platform applications only: not another application's in the account,
/// nor a platform left unconfigured.
#[test]
fn sns_endpoint_permissions_reach_only_the_configured_applications_endpoints() {
    let template = template();
    let account = "arn:aws:sns:eu-central-1:123456789012";
    let apns = format!("{account}:app/APNS/trainsync");
    let fcm = format!("{account}:app/GCM/trainsync");
    let endpoint = |platform: &str, app: &str| {
        format!("{account}:endpoint/{platform}/{app}/5e0c2bd8-7a1f-3c39-9d8e-0f2b6c4a1d77")
    };
    let own_apns = endpoint("APNS", "trainsync");
    let own_fcm = endpoint("GCM", "trainsync");
    let foreign = [
        endpoint("APNS", "another-app"),
        endpoint("GCM", "trainsync-staging"),
        endpoint("APNS_SANDBOX", "trainsync"),
        "arn:aws:sns:eu-central-1:210987654321:endpoint/GCM/trainsync/5e0c2bd8".to_owned(),
    ];
    for (apns, fcm) in [(apns.as_str(), ""), ("", fcm.as_str()), (&apns, &fcm)] {
        let stack = Stack::new(
            &template,
            &[
                ("ApnsPlatformApplicationArn", apns),
                ("FcmPlatformApplicationArn", fcm),
            ],
        );
        for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
            let binary = function["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("a binary");
            for action in sns_actions(binary) {
                let action = format!("sns:{action}");
                let granted = stack.granted(name, function, &action);
                if action == "sns:CreatePlatformEndpoint" {
                    let configured: Vec<String> = [apns, fcm]
                        .into_iter()
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect();
                    assert_eq!(granted, configured, "{name}: {action}");
                    continue;
                }
                let allows = |arn: &str| granted.iter().any(|pattern| covers(pattern, arn));
                assert_eq!(allows(&own_apns), !apns.is_empty(), "{name}: {action} APNs");
                assert_eq!(allows(&own_fcm), !fcm.is_empty(), "{name}: {action} FCM");
                for other in &foreign {
                    assert!(!allows(other), "{name}: {action} reaches {other}");
                }
            }
        }
    }
}

/// No function's environment resolves a secret (a dynamic reference to
/// Secrets Manager or a SecureString parameter lands in the plain-text
/// configuration anyone with lambda:GetFunctionConfiguration reads) or holds
/// a key: the refresh function names its KMS key, which signs inside KMS.
#[test]
fn no_function_environment_holds_a_secret() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml");
    for reference in ["resolve:secretsmanager", "resolve:ssm-secure"] {
        assert!(
            !text.contains(reference),
            "template.yaml uses {{{{{reference}"
        );
    }
    let template = template();
    let key = "arn:aws:kms:eu-central-1:123456789012:key/0b7e6a52-3c1e-4a57-9b0e-2d4a8f1e7c11";
    let stack = Stack::new(
        &template,
        &[
            ("SigningKmsKeyArn", key),
            ("SigningKeyId", "k-2026"),
            (
                "ApnsPlatformApplicationArn",
                "arn:aws:sns:eu-central-1:123456789012:app/APNS/trainsync",
            ),
        ],
    );
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let environment = stack.environment(function);
        for (variable, value) in &environment {
            assert!(
                !value.contains("{{resolve:") && !value.contains("PRIVATE KEY"),
                "{name}: {variable} holds a secret"
            );
        }
        for secret in ["JWT_SECRET", "JWT_SIGNING_KEY"] {
            assert!(!environment.contains_key(secret), "{name}: {secret}");
        }
        let config = config_of(name, &environment);
        assert!(
            matches!(config.auth, AuthConfig::Rs256Jwks { .. }),
            "{name} verifies against the JWKS"
        );
        assert!(
            !matches!(config.signing_key, Some(SigningKey::Pem { .. })),
            "{name}: a private key in the environment"
        );
    }
}

/// The refresh function (and no other) signs access tokens with the KMS key
/// of `SigningKmsKeyArn`: its environment names the key and kid, and its
/// policy alone allows `kms:Sign`, on exactly that key.
#[test]
fn only_the_refresh_function_signs_and_only_with_the_parameters_kms_key() {
    let template = template();
    let key = "arn:aws:kms:eu-central-1:123456789012:key/0b7e6a52-3c1e-4a57-9b0e-2d4a8f1e7c11";
    let set = [("SigningKmsKeyArn", key), ("SigningKeyId", "k-2026")];
    let unset = [("SigningKmsKeyArn", ""), ("SigningKeyId", "")];
    for (params, signing) in [(&set, true), (&unset, false)] {
        let stack = Stack::new(&template, params);
        for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
            let binary = function["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("a binary");
            let config = config_of(name, &stack.environment(function));
            let signs = signing && binary == "auth-refresh";
            let expected = signs.then(|| SigningKey::Kms {
                key_id: key.to_owned(),
                kid: "k-2026".to_owned(),
            });
            assert_eq!(config.signing_key, expected, "{name}");
            let granted = stack.granted(name, function, "kms:Sign");
            let expected: Vec<String> = if signs { vec![key.to_owned()] } else { vec![] };
            assert_eq!(granted, expected, "{name}: kms:Sign");
            // The table key is used through DynamoDB only (checked above);
            // no other KMS permission reaches the signing key.
            for action in ["kms:GetPublicKey", "kms:Verify", "kms:Decrypt", "kms:*"] {
                assert!(
                    !stack
                        .granted(name, function, action)
                        .iter()
                        .any(|r| r == key),
                    "{name}: {action} on the signing key"
                );
            }
        }
    }
    // Half a key is refused at deployment (the code would refuse to start).
    let rule = &template["Rules"]["SigningKeyIsComplete"]["Assertions"][0]["Assert"];
    assert!(!rule.is_null(), "a rule checks the signing key parameters");
    for (arn, kid, valid) in [
        ("", "", true),
        (key, "k-2026", true),
        (key, "", false),
        ("", "k-2026", false),
    ] {
        let stack = Stack::new(
            &template,
            &[("SigningKmsKeyArn", arn), ("SigningKeyId", kid)],
        );
        assert_eq!(stack.truth(rule), valid, "key {arn:?}, kid {kid:?}");
    }
    // The parameter takes a key ARN (IAM grants on key ARNs, not aliases).
    let pattern = template["Parameters"]["SigningKmsKeyArn"]["AllowedPattern"]
        .as_str()
        .expect("an AllowedPattern");
    assert!(
        pattern.contains(":kms:") && pattern.contains(":key/"),
        "{pattern}"
    );
}

// ------------------------------------------------------------------ logs and throttling

/// PRD 11.2: logs are kept 30 days. Every function gets a log group of its
/// own name, created by the stack with that retention (a group Lambda
/// creates on first use keeps logs forever).
#[test]
fn every_function_keeps_its_logs_thirty_days() {
    let template = template();
    let groups = resources_of_type(&template, "AWS::Logs::LogGroup");
    for (name, _) in resources_of_type(&template, "AWS::Serverless::Function") {
        let wanted = format!("!Sub /aws/lambda/${{{name}}}");
        let group = groups
            .iter()
            .find(|(_, g)| render(&g["Properties"]["LogGroupName"]) == wanted)
            .unwrap_or_else(|| panic!("{name} has no log group named after it"));
        assert_eq!(
            group.1["Properties"]["RetentionInDays"].as_u64(),
            Some(30),
            "{name}"
        );
    }
    for (name, group) in groups {
        assert_eq!(
            group["Properties"]["RetentionInDays"].as_u64(),
            Some(30),
            "{name}"
        );
    }
}

/// The refresh route is throttled far below the sync routes: it takes no
/// bearer token, so bursts there are guessing or denial of service.
#[test]
fn the_refresh_route_has_a_tighter_throttle_than_the_rest() {
    let template = template();
    let (_, api) = resources_of_type(&template, "AWS::Serverless::HttpApi")
        .into_iter()
        .next()
        .expect("the HTTP API");
    let default = &api["Properties"]["DefaultRouteSettings"];
    let refresh = &api["Properties"]["RouteSettings"][route(Endpoint::AuthRefresh).as_str()];
    for limit in ["ThrottlingBurstLimit", "ThrottlingRateLimit"] {
        let (tight, wide) = (refresh[limit].as_u64(), default[limit].as_u64());
        assert!(
            tight.is_some_and(|t| wide.is_some_and(|w| t * 5 <= w)),
            "{limit}: refresh {tight:?}, default {wide:?}"
        );
    }
}

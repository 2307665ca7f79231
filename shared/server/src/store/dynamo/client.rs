//! Connecting to DynamoDB: the SDK configuration loaded once per cold start,
//! the clients built on it (counting their requests, honouring
//! `DYNAMODB_ENDPOINT`) and [`DynamoStore`], the store on one table that every
//! storage trait is implemented for.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;

use super::metrics::{CountingInterceptor, RequestCounter};
use crate::config::Config;

/// The AWS SDK configuration for `config`, loaded once per cold start and
/// shared by every client: the default credential chain and region, or with
/// `DYNAMODB_ENDPOINT` (DynamoDB Local) static local credentials and
/// `us-east-1` unless `AWS_REGION` says otherwise.
pub async fn sdk_config(config: &Config) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    } else if config.dynamodb_endpoint.is_some() {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    if config.dynamodb_endpoint.is_some() {
        // DynamoDB Local accepts any credentials; never reach for real ones.
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "trainsync-local",
        ));
    }
    loader.load().await
}

/// The DynamoDB client on `sdk` (honouring `DYNAMODB_ENDPOINT`), counting
/// its requests into `counter`.
pub fn client_from(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    counter: Arc<RequestCounter>,
) -> Client {
    let mut builder =
        aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(CountingInterceptor(counter));
    if let Some(endpoint) = &config.dynamodb_endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

/// Builds the DynamoDB client for `config` (honouring `DYNAMODB_ENDPOINT`),
/// counting its requests into `counter`.
pub async fn client_with_counter(config: &Config, counter: Arc<RequestCounter>) -> Client {
    client_from(&sdk_config(config).await, config, counter)
}

/// Builds the DynamoDB client for `config` (honouring `DYNAMODB_ENDPOINT`).
pub async fn client_for(config: &Config) -> Client {
    client_with_counter(config, Arc::default()).await
}

/// The storage traits (`crate::store::SyncStore`) on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(super) client: Client,
    pub(super) table: String,
    counter: Arc<RequestCounter>,
}

impl DynamoStore {
    /// A store on `table` using `client`; `counter` is the one the client reports to.
    pub fn new(client: Client, table: impl Into<String>, counter: Arc<RequestCounter>) -> Self {
        Self {
            client,
            table: table.into(),
            counter,
        }
    }

    /// Connects as `config` says.
    pub async fn from_config(config: &Config) -> Self {
        Self::from_sdk_config(config, &sdk_config(config).await)
    }

    /// Connects as `config` says, on an already loaded SDK configuration.
    pub fn from_sdk_config(config: &Config, sdk: &aws_config::SdkConfig) -> Self {
        let counter = Arc::new(RequestCounter::default());
        let client = client_from(sdk, config, counter.clone());
        Self::new(client, config.table_name.clone(), counter)
    }

    /// DynamoDB requests made through this store's client.
    pub fn requests(&self) -> &RequestCounter {
        &self.counter
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

//! The whole system on one machine: DynamoDB Local (unless an endpoint is
//! given), the table, the handlers' state, the local gateway, a push
//! receiver standing in for SNS, and the stream fan-out (a poller on the
//! table's stream calling the `alerts-fanout` handler).

use std::future::Future;
use std::net::SocketAddr;

use chrono::Utc;
use sync_core::config::{Config, ConfigError, PushConfig};
use sync_core::state::AppState;
use tokio::net::TcpListener;

use crate::dynamodb_local::{self, DynamoDbLocal, Storage};
use crate::local_config;
use crate::push_receiver::PushReceiver;
use crate::stream_poller::{self, PollerHandle};

/// Errors starting or running the local system.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration (environment plus local defaults) is unusable.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// DynamoDB Local could not be started.
    #[error(transparent)]
    DynamoDbLocal(#[from] dynamodb_local::Error),
    /// The table could not be created.
    #[error("cannot create table {table} on {endpoint}: {source}")]
    CreateTable {
        /// The table.
        table: String,
        /// The DynamoDB endpoint used.
        endpoint: String,
        /// What DynamoDB answered.
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    /// The handlers' state could not be built.
    #[error("cannot build the handlers' state: {0}")]
    State(#[from] sync_core::state::StartupError),
    /// The local push receiver could not listen.
    #[error("cannot start the local push receiver: {0}")]
    PushReceiver(#[source] std::io::Error),
    /// The gateway could not listen or serve.
    #[error("gateway on {addr}: {source}")]
    Serve {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Stopping DynamoDB Local failed.
    #[error("cannot stop DynamoDB Local: {0}")]
    Stop(#[source] dynamodb_local::Error),
}

/// `<repo>/.local/dynamodb-data`, where the local gateway persists by default.
pub fn default_data_dir() -> std::path::PathBuf {
    crate::local_dir().join("dynamodb-data")
}

/// Where the local system gets its DynamoDB from when `DYNAMODB_ENDPOINT` is unset.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Storage of the DynamoDB Local started when no endpoint is configured.
    pub storage: Storage,
    /// Copy DynamoDB Local's output to stderr.
    pub echo_dynamodb_output: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            storage: Storage::Persistent(default_data_dir()),
            echo_dynamodb_output: false,
        }
    }
}

/// Everything the gateway needs, ready to serve.
pub struct LocalSystem {
    /// The configuration in use (local defaults applied).
    pub config: Config,
    /// The handlers' state.
    pub state: AppState,
    /// The DynamoDB Local this process started, if it started one.
    pub dynamodb: Option<DynamoDbLocal>,
    /// The push receiver pushes go to, unless `PUSH_PROVIDER` names another.
    pub push_receiver: Option<PushReceiver>,
}

impl LocalSystem {
    /// Reads the configuration (environment plus local defaults), starts
    /// DynamoDB Local when `DYNAMODB_ENDPOINT` is unset, creates the table and
    /// builds the state.
    pub async fn start(options: StartOptions) -> Result<LocalSystem, Error> {
        let configured = local_config::from_env()?;
        let (config, dynamodb) = match configured.dynamodb_endpoint {
            Some(_) => (configured, None),
            None => {
                let local = DynamoDbLocal::start(dynamodb_local::Options {
                    storage: options.storage.clone(),
                    echo_output: options.echo_dynamodb_output,
                    ..dynamodb_local::Options::default()
                })
                .await?;
                (
                    local_config::from_env_with_endpoint(&local.endpoint())?,
                    Some(local),
                )
            }
        };
        create_table(&config).await?;
        let mut config = config;
        // Pushes go to a local receiver that logs them, unless configured otherwise.
        let push_receiver = if config.push == PushConfig::Off
            && local_config::process_env("PUSH_PROVIDER").is_none()
        {
            let receiver = PushReceiver::start().await.map_err(Error::PushReceiver)?;
            config.push = PushConfig::Http {
                url: receiver.url(),
            };
            Some(receiver)
        } else {
            None
        };
        let mut state = sync_core::lambda::build_state(config.clone()).await?;
        // Locally every response shows its DynamoDB round trips.
        state.request_count_header = true;
        Ok(LocalSystem {
            config,
            state,
            dynamodb,
            push_receiver,
        })
    }

    /// The DynamoDB endpoint in use.
    pub fn dynamodb_endpoint(&self) -> String {
        endpoint_label(&self.config)
    }

    /// Serves the gateway on `listener` until `shutdown` resolves, then stops
    /// the stream fan-out and DynamoDB Local (if this process started it).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".to_owned());
        let fanout = start_stream_fanout(&self.config, &self.state);
        let served = crate::gateway::serve(self.state.clone(), listener, shutdown).await;
        fanout.stop().await;
        if let Some(local) = self.dynamodb {
            local.stop().map_err(Error::Stop)?;
        }
        served.map_err(|source| Error::Serve { addr, source })
    }
}

fn endpoint_label(config: &Config) -> String {
    config
        .dynamodb_endpoint
        .clone()
        .unwrap_or_else(|| "AWS DynamoDB (default endpoint)".to_owned())
}

/// Creates the configured table on the configured endpoint (idempotent).
pub async fn create_table(config: &Config) -> Result<(), Error> {
    let client = sync_core::store::dynamo::client_for(config).await;
    sync_core::store::dynamo::schema::create_table(&client, &config.table_name)
        .await
        .map_err(|source| Error::CreateTable {
            table: config.table_name.clone(),
            endpoint: endpoint_label(config),
            source: Box::new(source),
        })
}

/// The running stream fan-out: a poller on the table's stream (the same
/// filter as the deployed event-source mapping) calling the `alerts-fanout`
/// handler, [`sync_core::handlers::fanout::fan_out`].
#[derive(Debug)]
pub struct StreamFanout {
    poller: PollerHandle,
}

impl StreamFanout {
    /// Stops the poller and waits for it.
    pub async fn stop(self) {
        self.poller.stop().await;
    }
}

/// Starts the local DynamoDB-stream fan-out poller.
pub fn start_stream_fanout(config: &Config, state: &AppState) -> StreamFanout {
    let state = state.clone();
    let poller = stream_poller::spawn(config, move |event| {
        let state = state.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                sync_core::handlers::fanout::fan_out(&state, event).await,
            )
        }
    });
    StreamFanout { poller }
}

/// What the local gateway prints once it serves: URL, DynamoDB endpoint,
/// a 24-hour dev token for `dev-user` / `dev-device` and a curl example.
pub fn startup_message(system: &LocalSystem, gateway: SocketAddr) -> String {
    let url = format!("http://{gateway}");
    let mut message = format!(
        "trainsync local gateway\n  \
         URL:               {url}\n  \
         DynamoDB endpoint: {endpoint}\n  \
         Table:             {table}\n",
        endpoint = system.dynamodb_endpoint(),
        table = system.config.table_name,
    );
    let token = local_config::dev_token(
        &system.config,
        local_config::DEV_USER,
        local_config::DEV_DEVICE,
        local_config::DEV_TOKEN_TTL_HOURS,
        Utc::now(),
    );
    match token {
        Ok(token) => message.push_str(&format!(
            "  Dev token for {user} / {device}, valid {hours} h (signed with the LOCAL DEV secret unless JWT_SECRET is set):\n\
             {token}\n\n\
             Try:\n  \
             curl -s -H \"Authorization: Bearer {token}\" {url}/sync/status\n",
            user = local_config::DEV_USER,
            device = local_config::DEV_DEVICE,
            hours = local_config::DEV_TOKEN_TTL_HOURS,
        )),
        Err(error) => message.push_str(&format!("  No dev token: {error}\n")),
    }
    if let Some(receiver) = &system.push_receiver {
        message.push_str(&format!(
            "\nCritical-alert pushes go to the local push receiver at {} and are logged as \"push received\".\n",
            receiver.url()
        ));
    }
    message.push_str("\nCtrl-C stops the gateway and DynamoDB Local.");
    message
}

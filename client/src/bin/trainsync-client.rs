//! `trainsync-client`: one simulated device over a database file, so a person
//! can play two devices against the local gateway. See `docs/client.md`.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use trainsync_client::local::{CheckIn, WorkoutLog};
use trainsync_client::sync::Trigger;
use trainsync_client::{Client, FileSecretStore, StoredTokens};
use trainsync_protocol::domain::{ActivityType, SettingKey};
use trainsync_protocol::names::from_wire_name;
use trainsync_protocol::wire::TokenPair;
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "The trainsync offline-first client on a local database file")]
struct Cli {
    /// The device's database (created if absent); tokens go to `<db>.tokens` (mode 0600).
    #[arg(long)]
    db: PathBuf,
    /// The API's base URL, e.g. http://127.0.0.1:3000.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Signs in with a token pair (`trainsync login` output) or an access token (the gateway's dev token).
    Login {
        /// A file with the token pair JSON (`-` for stdin).
        #[arg(long, conflicts_with = "access_token")]
        pair: Option<PathBuf>,
        /// An access token.
        #[arg(long)]
        access_token: Option<String>,
        /// Its refresh token, if any.
        #[arg(long, requires = "access_token")]
        refresh_token: Option<String>,
    },
    /// Logs a completed workout.
    LogWorkout {
        /// run, ride, swim, walk, strength or other.
        #[arg(long, default_value = "run")]
        r#type: String,
        /// When it started (RFC 3339); now minus the duration if absent.
        #[arg(long)]
        started_at: Option<DateTime<Utc>>,
        /// Duration in minutes.
        #[arg(long)]
        minutes: u32,
        /// Distance in metres.
        #[arg(long)]
        distance_m: Option<f64>,
        /// Average heart rate.
        #[arg(long)]
        avg_hr: Option<u16>,
        /// RPE 1..=10.
        #[arg(long)]
        rpe: Option<u8>,
        /// Notes.
        #[arg(long)]
        notes: Option<String>,
        /// Feeling 1..=5.
        #[arg(long)]
        feeling: Option<u8>,
    },
    /// Records a daily check-in.
    CheckIn {
        /// The day (today if absent).
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Recovery 1..=10.
        #[arg(long)]
        recovery: Option<u8>,
        /// Hours slept.
        #[arg(long)]
        sleep_hours: Option<f64>,
        /// Soreness 1..=10.
        #[arg(long)]
        soreness: Option<u8>,
    },
    /// Changes a setting: `set units '"imperial"'` (the value is JSON).
    Set {
        /// goal_race_date, available_training_days, units, timezone or notifications_enabled.
        key: String,
        /// The value as JSON.
        value: String,
    },
    /// Asks to move a plan workout to another day.
    Reschedule {
        /// The workout's id.
        workout_id: String,
        /// The new day.
        new_date: NaiveDate,
    },
    /// Runs a sync session now.
    Sync,
    /// Shows the sync status, pending and rejected items.
    Status,
    /// Shows the conflict log.
    Conflicts,
    /// Undoes an automatic resolution.
    Undo {
        /// The conflict-log entry.
        conflict_id: Uuid,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let secrets = Arc::new(FileSecretStore::beside(&cli.db));
    let client = Client::open(&cli.db, &cli.server, secrets)?;
    match cli.command {
        Command::Login {
            pair,
            access_token,
            refresh_token,
        } => {
            match (pair, access_token) {
                (Some(path), _) => {
                    let text = if path.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin())?
                    } else {
                        std::fs::read_to_string(path)?
                    };
                    client.sign_in(serde_json::from_str::<TokenPair>(&text)?)?;
                }
                (None, Some(access_token)) => client.sign_in_with(StoredTokens {
                    access_token,
                    expires_at: None,
                    refresh_token,
                })?,
                (None, None) => return Err("give --pair or --access-token".into()),
            }
            println!("signed in");
        }
        Command::LogWorkout {
            r#type,
            started_at,
            minutes,
            distance_m,
            avg_hr,
            rpe,
            notes,
            feeling,
        } => {
            let activity_type: ActivityType =
                from_wire_name(&r#type).ok_or_else(|| format!("unknown activity type {type}"))?;
            let duration_s = minutes * 60;
            let started_at = started_at
                .unwrap_or_else(|| Utc::now() - chrono::Duration::seconds(i64::from(duration_s)));
            let id = client.log_workout(WorkoutLog {
                activity_type,
                started_at,
                duration_s,
                distance_m,
                avg_hr,
                rpe,
                notes,
                feeling,
            })?;
            println!("logged {id}");
        }
        Command::CheckIn {
            date,
            recovery,
            sleep_hours,
            soreness,
        } => {
            let date = client.check_in(CheckIn {
                date,
                recovery_rating: recovery,
                sleep_hours,
                soreness,
            })?;
            println!("checked in for {date}");
        }
        Command::Set { key, value } => {
            let key: SettingKey =
                from_wire_name(&key).ok_or_else(|| format!("unknown setting {key}"))?;
            client.set_setting(key, serde_json::from_str(&value)?)?;
            println!("set {}", key.as_str());
        }
        Command::Reschedule {
            workout_id,
            new_date,
        } => {
            let id = client.reschedule(&workout_id, new_date)?;
            println!("reschedule {id} queued");
        }
        Command::Sync => println!("{:?}", client.sync(Trigger::Manual).await?),
        Command::Status => {
            let status = client.status()?;
            println!("{:?}", status.health);
            for message in &status.messages {
                println!("  {message}");
            }
            for item in client.rejected_items()? {
                println!(
                    "  rejected {} {}: {}",
                    serde_json::to_string(&item.item_type)?,
                    item.entity_id,
                    item.rejection.unwrap_or_default()
                );
            }
        }
        Command::Conflicts => {
            for c in client.conflicts()? {
                println!(
                    "{} {} {} {:?} until {}: {}",
                    c.id,
                    c.rule.as_str(),
                    c.entity_id,
                    c.status,
                    c.undo_until,
                    c.message
                );
            }
        }
        Command::Undo { conflict_id } => {
            let record = client.undo_conflict(conflict_id).await?;
            println!("{} {:?}", record.id, record.status);
        }
    }
    Ok(())
}

//! Where the device's tokens live (PRD 8.2): never in the SQLite file. The
//! app implements [`SecretStore`] with the iOS Keychain or Android
//! EncryptedSharedPreferences; the CLI uses [`FileSecretStore`], a file only
//! its owner may read.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// The device's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTokens {
    /// The bearer token.
    pub access_token: String,
    /// When the access token expires, if known.
    pub expires_at: Option<DateTime<Utc>>,
    /// The refresh token, if the login issued one (a dev token has none).
    pub refresh_token: Option<String>,
}

impl From<trainsync_protocol::wire::TokenPair> for StoredTokens {
    fn from(pair: trainsync_protocol::wire::TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            expires_at: Some(pair.expires_at),
            refresh_token: Some(pair.refresh_token),
        }
    }
}

/// Get, set and delete of the token pair in the platform's secure storage.
pub trait SecretStore: Send + Sync {
    /// The stored tokens, if any.
    fn get(&self) -> Result<Option<StoredTokens>, ClientError>;
    /// Replaces the stored tokens.
    fn set(&self, tokens: &StoredTokens) -> Result<(), ClientError>;
    /// Forgets the tokens (sign-out).
    fn delete(&self) -> Result<(), ClientError>;
}

/// The CLI's secret store: a JSON file created with mode 0600.
#[derive(Debug, Clone)]
pub struct FileSecretStore {
    path: PathBuf,
}

impl FileSecretStore {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The store beside the database `db` (`<db>.tokens`).
    pub fn beside(db: &Path) -> Self {
        let mut name = db.as_os_str().to_owned();
        name.push(".tokens");
        Self::new(PathBuf::from(name))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io_error(e: std::io::Error) -> ClientError {
    ClientError::Secrets(e.to_string())
}

impl SecretStore for FileSecretStore {
    fn get(&self) -> Result<Option<StoredTokens>, ClientError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Secrets(format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    fn set(&self, tokens: &StoredTokens) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(tokens).map_err(|e| ClientError::Secrets(e.to_string()))?;
        // Written beside and renamed over, so a crash never leaves half a token;
        // the mode is set at creation, so the secret is never readable by others.
        let temporary = self.path.with_extension("tokens.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary).map_err(io_error)?;
        file.write_all(&bytes).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        std::fs::rename(&temporary, &self.path).map_err(io_error)
    }

    fn delete(&self) -> Result<(), ClientError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e)),
            _ => Ok(()),
        }
    }
}

/// A store in memory, for tests and apps that keep tokens elsewhere.
#[derive(Debug, Default)]
pub struct MemorySecretStore {
    tokens: std::sync::Mutex<Option<StoredTokens>>,
}

impl SecretStore for MemorySecretStore {
    fn get(&self) -> Result<Option<StoredTokens>, ClientError> {
        Ok(self
            .tokens
            .lock()
            .map_err(|e| ClientError::Secrets(e.to_string()))?
            .clone())
    }

    fn set(&self, tokens: &StoredTokens) -> Result<(), ClientError> {
        *self
            .tokens
            .lock()
            .map_err(|e| ClientError::Secrets(e.to_string()))? = Some(tokens.clone());
        Ok(())
    }

    fn delete(&self) -> Result<(), ClientError> {
        *self
            .tokens
            .lock()
            .map_err(|e| ClientError::Secrets(e.to_string()))? = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_store_round_trips_and_is_readable_only_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSecretStore::beside(&dir.path().join("phone.db"));
        assert_eq!(store.get().unwrap(), None);
        let tokens = StoredTokens {
            access_token: "a".into(),
            expires_at: None,
            refresh_token: Some("r".into()),
        };
        store.set(&tokens).unwrap();
        assert_eq!(store.get().unwrap(), Some(tokens));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.delete().unwrap();
        assert_eq!(store.get().unwrap(), None);
    }
}

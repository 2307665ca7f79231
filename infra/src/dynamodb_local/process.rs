//! Running the Java process: choosing a port, spawning DynamoDB Local with
//! the right flags, and stopping it (killed and reaped on [`DynamoDbLocal::stop`]
//! or drop), so no test or command leaves Java behind.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use super::install::{ensure_installed, find_program};
use super::output::{SharedTail, drain};
use super::readiness::endpoint_for;
use super::{Error, Installation, Options, Storage};

/// How many times a port picked by us is replaced when Java could not bind it.
const PORT_ATTEMPTS: usize = 3;

/// A running DynamoDB Local; stopped on [`DynamoDbLocal::stop`] or drop.
#[derive(Debug)]
pub struct DynamoDbLocal {
    child: Option<Child>,
    port: u16,
    storage: Storage,
    output: SharedTail,
}

impl DynamoDbLocal {
    /// Installs DynamoDB Local if needed, starts it and waits until it answers
    /// a ListTables request.
    pub async fn start(options: Options) -> Result<DynamoDbLocal, Error> {
        let java = find_program(&options.java).ok_or_else(|| Error::JavaNotFound {
            java: options.java.display().to_string(),
        })?;
        let installation = ensure_installed(&options.install_dir).await?;
        let mut options = options;
        if let Storage::Persistent(dir) = &options.storage {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            // Java runs in the jar's folder: hand it an absolute path.
            let absolute = std::path::absolute(dir)
                .map_err(|e| Error::io(format!("cannot resolve {}", dir.display()), e))?;
            options.storage = Storage::Persistent(absolute);
        }

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = match options.port {
                Some(port) => {
                    if !port_is_free(port) {
                        return Err(Error::PortInUse { port });
                    }
                    port
                }
                None => free_port()?,
            };
            let instance = Self::spawn(&java, &installation, &options, port)?;
            match instance.wait_until_ready(options.startup_timeout).await {
                Ok(instance) => return Ok(instance),
                // Someone took the port we picked between our check and Java's bind.
                Err(Error::Exited { output, .. })
                    if options.port.is_none()
                        && attempt < PORT_ATTEMPTS
                        && output.contains("Address already in use") =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(
        java: &Path,
        installation: &Installation,
        options: &Options,
        port: u16,
    ) -> Result<DynamoDbLocal, Error> {
        let mut command = Command::new(java);
        command
            .arg(format!(
                "-Djava.library.path={}",
                installation.lib_dir.display()
            ))
            .arg("-jar")
            .arg(&installation.jar);
        match &options.storage {
            Storage::InMemory => {
                command.arg("-inMemory");
            }
            Storage::Persistent(dir) => {
                command.arg("-dbPath").arg(dir);
            }
        }
        // One database whatever the credentials and region of the client;
        // no telemetry (there is no network beyond package registries).
        command
            .args(["-sharedDb", "-disableTelemetry", "-port"])
            .arg(port.to_string())
            // The jar resolves some files relative to its working directory.
            .current_dir(installation.jar.parent().unwrap_or(Path::new(".")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {}", java.display()), e))?;
        let output = SharedTail::default();
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, output.clone(), options.echo_output);
        }
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, output.clone(), options.echo_output);
        }
        Ok(DynamoDbLocal {
            child: Some(child),
            port,
            storage: options.storage.clone(),
            output,
        })
    }

    /// `http://127.0.0.1:<port>`, for `DYNAMODB_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        endpoint_for(self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where it keeps its data.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The Java process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines Java wrote to stdout and stderr.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .map(|tail| tail.text())
            .unwrap_or_default()
    }

    /// Java's exit status if it has exited (unexpectedly: it never exits on its own).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(|e| Error::io("cannot poll the DynamoDB Local process", e)),
            None => Ok(None),
        }
    }

    /// Stops the Java process and waits for it to be gone (port freed).
    pub fn stop(mut self) -> Result<(), Error> {
        match self.child.take() {
            Some(mut child) => {
                // Already exited is fine; the wait below reaps it either way.
                let _ = child.kill();
                child
                    .wait()
                    .map(|_| ())
                    .map_err(|e| Error::io("cannot wait for DynamoDB Local to stop", e))
            }
            None => Ok(()),
        }
    }

    /// Kills Java and reaps it, ignoring errors (it may be gone already).
    pub(super) fn kill_and_wait(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        self.kill_and_wait();
    }
}

/// Whether nothing listens on `port` (checked on all interfaces, as Java binds there).
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).is_ok()
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, Error> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| Error::io("cannot find a free port", e))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn missing_java_is_a_clear_error() {
        let options = Options {
            java: PathBuf::from("no-such-java-trainsync"),
            ..Options::default()
        };
        let error = DynamoDbLocal::start(options).await.unwrap_err();
        assert!(matches!(error, Error::JavaNotFound { .. }), "{error}");
        assert!(error.to_string().contains("Java 17"), "{error}");
    }

    /// Serialises the tests that write and run a script: a fork in another
    /// thread while the file is open for writing would make exec fail (ETXTBSY).
    static SCRIPTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// A stand-in for `java` that runs `script` (a shell snippet).
    fn fake_java(name: &str, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path =
            std::env::temp_dir().join(format!("trainsync-fake-java-{name}-{}", std::process::id()));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn java_dying_early_reports_its_output() {
        let _serial = SCRIPTS.lock().await;
        let java = fake_java("dies", "echo 'boom: no such option' >&2; exit 3");
        let options = Options {
            java: java.clone(),
            ..Options::default()
        };
        let error = DynamoDbLocal::start(options).await.unwrap_err();
        std::fs::remove_file(&java).unwrap();
        match &error {
            Error::Exited { status, output } => {
                assert_eq!(status.code(), Some(3));
                assert!(output.contains("boom: no such option"), "{output}");
            }
            other => panic!("expected Exited, got {other}"),
        }
    }

    #[tokio::test]
    async fn silent_java_times_out_and_is_killed() {
        let _serial = SCRIPTS.lock().await;
        let java = fake_java("hangs", "echo starting; exec sleep 30");
        let options = Options {
            java: java.clone(),
            startup_timeout: Duration::from_millis(800),
            ..Options::default()
        };
        let started = Instant::now();
        let error = DynamoDbLocal::start(options).await.unwrap_err();
        std::fs::remove_file(&java).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        match &error {
            Error::Timeout { output, .. } => assert!(output.contains("starting"), "{output}"),
            other => panic!("expected Timeout, got {other}"),
        }
    }
}

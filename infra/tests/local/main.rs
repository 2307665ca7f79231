//! The local tooling's integration tests, in one test binary (one link, one
//! process): the `trainsync` CLI, the DynamoDB Local launcher, the gateway,
//! the push receiver and the stream poller.
//!
//! They share a process, so none of them may set environment variables or
//! keep process-wide state: each reads `DYNAMODB_ENDPOINT` (set by
//! scripts/test) or starts its own DynamoDB Local, and uses uniquely named
//! tables, files and ports. Run one group with e.g.
//! `cargo test -p trainsync-infra --test local stream_poller::`.

mod cli;
mod dynamodb_local;
mod gateway;
mod helpers;
mod push_receiver;
mod stream_poller;

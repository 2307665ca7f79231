//! HTTP at the edge: reading requests (auth header, body, query) and writing
//! responses, including the one place errors become statuses.

mod error;
mod request;
mod response;

pub use error::error_reply;
pub use request::{bearer_header, json_body, json_request, limit_param, query_param};
pub use response::{Reply, ReplyBody, into_response};

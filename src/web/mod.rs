//! The web side (PROTOCOL.md section 9) as plain code with no I/O.
//!
//! A web connection starts as HTTP/1.1: [`http::HeadReader`] collects its
//! request head within a hard bound and decides the answer (the page, a
//! health check, the metrics, a WebSocket upgrade, or an error status).
//! After an upgrade the connection is a chat connection like TCP: its bytes
//! go through [`ws::Decoder`], whose text chunks feed the same
//! [`crate::line::LineReader`] as TCP (an end of message acts as an LF),
//! and the room's lines go out through [`ws::encode_text`].
//!
//! - [`http`]: the request head, routing, and every HTTP response.
//! - [`ws`]: the WebSocket frame codec, server side.
//! - [`metrics`]: the `/metrics` body in Prometheus text format.
//! - [`assets`]: the chat page's files (`web/` in the repository), compiled
//!   into the binary, looked up by request path.

pub mod assets;
pub mod http;
pub mod metrics;
pub mod ws;

//! chatroom: one chat room, served by one thread on one `mio` event loop.
//!
//! Any line-based TCP tool (`nc`, `telnet`, `socat`) is a client; so is the
//! small `chat-client` in this crate. The wire protocol is in `PROTOCOL.md`
//! (shared with the people we build for); this crate implements it.
//!
//! # Layout
//!
//! - [`line`]: the framer. Bytes in, whole lines out, however TCP split them;
//!   over-long lines are reported once and skipped.
//! - [`text`]: decoding (invalid UTF-8 becomes U+FFFD), trimming, removal of
//!   control characters, and the name rules.
//! - [`room`]: the room's rules as plain code with no I/O: a line from a
//!   connection goes in, addressed lines come out through an
//!   [`room::Outbox`]. All protocol behaviour is unit-tested here.
//! - [`server`]: the event loop. Accepts, reads until `WouldBlock`, feeds
//!   lines to the room, appends its output to per-connection buffers, flushes
//!   each connection once per iteration, sweeps idle connections, and shuts
//!   down on SIGINT/SIGTERM.
//! - [`bench`]: the load generator behind `chat-bench`: many clients in
//!   one thread over loopback, fan-out/ramp/connect scenarios, latency
//!   histogram and `/proc` readings (see `BENCHMARKS.md`).
//! - [`client`]: the `chat-client` library: two blocking threads (stdin
//!   and socket), reconnects, keepalive and login as unit-tested policy code
//!   ([`client::policy`], [`client::login`]).
//! - [`logging`]: log set-up shared by the binaries (logs go to stderr).
//! - [`web`]: the web side: the chat page's files (`web/`) compiled into the
//!   binary ([`web::assets`]).
//! - `src/bin/`: thin `main`s that parse flags and call the library.

pub mod bench;
pub mod client;
pub mod line;
pub mod logging;
pub mod room;
pub mod server;
pub mod text;
pub mod web;

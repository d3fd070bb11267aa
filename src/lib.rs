//! chatroom: one chat room, served by one thread on one `mio` event loop.
//!
//! Any line-based TCP tool (`nc`, `telnet`, `socat`) is a client; so is the
//! small `chat-client` in this crate. The wire protocol is
//! `docs/PROTOCOL.md` in the repository (version 2); this crate implements
//! it, and every rule there has a test in `tests/` through a real socket.
//!
//! # Layout
//!
//! - [`line`](mod@line): the framer. Bytes in, whole lines out, however TCP split them;
//!   over-long lines are reported once and skipped.
//! - [`text`]: decoding (invalid UTF-8 becomes U+FFFD), trimming, removal of
//!   control characters, and the name rules.
//! - [`room`]: the room's rules as plain code with no I/O: a line from a
//!   connection goes in, addressed lines come out through an
//!   [`room::Outbox`]. All protocol behaviour is unit-tested here.
//! - [`server`]: the event loop. Accepts, reads until `WouldBlock`, feeds
//!   lines to the room, appends its output to per-connection buffers, flushes
//!   each connection once per iteration, sweeps idle connections, and shuts
//!   down on SIGINT/SIGTERM. It owns the budgets: what one turn reads, when
//!   reading slows down for a reader that is behind, who is too slow, and
//!   the places under `--max-clients`/`--max-per-ip` (`server/places.rs`).
//!   With a certificate ([`server::tls`]) TLS sits under the transports: a
//!   connection's bytes go through its rustls session in the same loop, on
//!   a TLS port for lines and on the web port (HTTPS, WSS).
//! - [`web`]: the web side as plain code with no I/O: the HTTP request
//!   head and its answers, the WebSocket frame codec (text messages in as
//!   line bytes, room lines out as text frames), the `/metrics` body, and
//!   the page's embedded files.
//! - [`store`]: the history on disk (`--history-db`): an SQLite file
//!   opened (or refused) at start, one transaction of public lines per loop
//!   turn, pruned to the kept lines, with a backlog when a write fails.
//! - [`cluster`]: several servers, one room, through Redis: the room's
//!   asks go out as Lua scripts (id, stream, publish in one atomic step),
//!   records come back in one order for every server; two RESP links in the
//!   same poll.
//! - [`client`]: the `chat-client` library: two blocking threads (stdin
//!   and socket), reconnects, keepalive, login and resume (ids, `/since`)
//!   as unit-tested policy code ([`client::policy`], [`client::login`],
//!   [`client::resume`]), and on a terminal a line editor that keeps the
//!   half-typed line intact ([`client::term`]); `--tls` ([`client::tls`])
//!   checks the server's certificate.
//! - [`logging`]: log set-up shared by the binaries (logs go to stderr).
//! - [`web`]: the web side: the chat page's files (`web/`) compiled into the
//!   binary ([`web::assets`]).
//! - `src/bin/`: thin `main`s that parse flags and call the library.
//!
//! The benchmark, `chat-bench`, is a separate crate of the workspace
//! (`bench/`): it drives a real `chat-server` process over sockets and needs
//! nothing from this library (see `BENCHMARKS.md`).

pub mod client;
pub mod cluster;
pub mod line;
pub mod logging;
pub mod room;
pub mod server;
pub mod store;
pub mod text;
pub mod web;

//! The web side in the loop (PROTOCOL.md section 9): a web connection's
//! request head, its answer, and after an upgrade its WebSocket frames, which
//! feed the same room as TCP lines. The protocol work is in [`crate::web`];
//! this is only the glue.

use std::time::Instant;

use super::conn::{variant, Kind, Transport};
use super::Server;
use crate::line::{Frame, LineReader};
use crate::room::{Gone, Outbox};
use crate::web::http::{Decision, Reply};
use crate::web::metrics::{self, Metrics};
use crate::web::ws::{self, Event, Failure};

/// How a WebSocket connection's input ended, if it did.
enum End {
    /// The client sent a close frame (with its code, if any).
    Closed(Option<u16>),
    /// The client broke the protocol.
    Failed(Failure),
}

impl Server {
    /// Bytes from a web connection that is reading its request head.
    pub(super) fn http_input(&mut self, key: usize, data: &mut [u8], now: Instant) {
        let Some(Kind::Http(head)) = self.conns.get_mut(key).map(|c| &mut c.kind) else {
            return;
        };
        let Some(Decision { reply, consumed }) = head.feed(data, &self.config.web_origins) else {
            return; // not complete yet
        };
        let answer = match reply {
            Reply::Upgrade(answer) => {
                self.upgrade(key, &answer, now);
                self.ws_input(key, &mut data[consumed..], now);
                return;
            }
            Reply::Respond(answer) => answer,
            Reply::Metrics => self.metrics(now).response(),
        };
        self.conns[key].kind = Kind::Answered;
        let (_, mut wire) = self.wire(now);
        wire.raw(key, &answer);
        wire.hang_up(key);
    }

    /// A valid upgrade: answer `101`, and from now on the connection is a
    /// chat connection in the room.
    fn upgrade(&mut self, key: usize, answer: &[u8], now: Instant) {
        let max_line = self.config.max_line;
        let c = &mut self.conns[key];
        c.kind = Kind::Ws {
            dec: ws::Decoder::new(),
            lines: LineReader::new(max_line),
        };
        c.variant = variant(true, false);
        c.transport = Some(Transport::Ws);
        self.stats.ws += 1;
        log::info!("conn {key} connected from {} (WebSocket)", c.peer);
        let (room, mut wire) = self.wire(now);
        wire.raw(key, answer);
        room.connect(key, &mut wire);
    }

    /// Bytes from a WebSocket connection: frames in, lines to the room. A
    /// read chunk is decoded whole (the turn's budget is checked between
    /// reads, not inside a chunk).
    pub(super) fn ws_input(&mut self, key: usize, data: &mut [u8], now: Instant) {
        let Some(Kind::Ws { dec, lines }) = self.conns.get_mut(key).map(|c| &mut c.kind) else {
            return;
        };
        // The decoder and line reader leave the connection while the room
        // works (it may hang the connection up, which must still see a
        // WebSocket); a fresh pair stands in, allocating nothing.
        let mut dec = std::mem::take(dec);
        let mut lines = std::mem::replace(lines, LineReader::new(0));
        let mut end = None;
        let (room, mut wire) = self.wire(now);
        let result = dec.feed(data, |event| match event {
            Event::Text(text) => {
                lines.feed(text, |frame| {
                    match frame {
                        Frame::Line(line) => room.line(key, line, now, &mut wire),
                        Frame::TooLong => room.line_too_long(key, &mut wire),
                    }
                    room.has_session(key)
                });
                room.has_session(key)
            }
            Event::TextEnd => {
                lines.feed(b"\n", |frame| {
                    match frame {
                        Frame::Line(line) => room.line(key, line, now, &mut wire),
                        Frame::TooLong => room.line_too_long(key, &mut wire),
                    }
                    room.has_session(key)
                });
                room.has_session(key)
            }
            Event::Binary => {
                room.binary_refused(key, &mut wire);
                true
            }
            Event::Ping(payload) => {
                let mut pong = Vec::with_capacity(payload.len() + 2);
                ws::encode_pong(payload, &mut pong);
                wire.raw(key, &pong);
                true
            }
            Event::Close(code) => {
                end = Some(End::Closed(code));
                false
            }
        });
        if let Err(failure) = result {
            end = Some(End::Failed(failure));
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        match end {
            None => {
                if let Kind::Ws {
                    dec: d, lines: l, ..
                } = &mut c.kind
                {
                    *d = dec;
                    *l = lines;
                }
            }
            Some(end) => self.ws_end(key, end, now),
        }
    }

    /// The client closed, or broke the protocol: answer with a close frame,
    /// then leave the room as after EOF.
    fn ws_end(&mut self, key: usize, end: End, now: Instant) {
        let mut frame = Vec::new();
        match end {
            End::Closed(code) => ws::encode_close(code.unwrap_or(ws::NORMAL), "", &mut frame),
            End::Failed(f) => {
                log::debug!("conn {key}: WebSocket {} ({})", f.code, f.reason);
                self.stats.protocol += 1;
                ws::encode_close(f.code, f.reason, &mut frame);
            }
        }
        let peer = self.conns[key].peer;
        let (room, mut wire) = self.wire(now);
        if wire.conns[key].closing.is_none() {
            wire.raw(key, &frame);
        }
        // No second close frame from the hang-up.
        wire.conns[key].kind = Kind::Answered;
        if let Some(name) = room.disconnect(key, Gone::Disconnected, &mut wire) {
            log::info!("conn {key} ({name}) from {peer}: disconnected (WebSocket close)");
        }
        wire.hang_up(key);
    }

    /// The counters `/metrics` shows, now.
    fn metrics(&self, now: Instant) -> Metrics {
        let r = self.room.counters();
        let s = &self.stats;
        let history_write_errors = self
            .disk
            .as_ref()
            .map_or(0, |d| d.store.stats().failed_writes);
        Metrics {
            users: self.room.member_count() as u64,
            connections: metrics::Connections {
                tcp: s.tcp,
                ws: s.ws,
            },
            lines: r.lines,
            deliveries: self.tally.deliveries,
            dropped: metrics::Dropped {
                too_slow: s.too_slow,
                idle: s.idle,
                login_timeout: s.login_timeout,
                protocol: s.protocol,
            },
            refused: metrics::Refused {
                full: s.full,
                per_ip: s.per_ip,
                rate: r.refused_rate,
                too_long: r.refused_too_long,
                binary: r.refused_binary,
            },
            history_write_errors,
            uptime: now.duration_since(self.started),
        }
    }
}

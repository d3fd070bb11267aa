//! Clients for the web tests (PROTOCOL.md section 9): a real WebSocket
//! client (tungstenite's, over a blocking socket with a read timeout), raw
//! HTTP requests, hand-made frames for what a real client never sends, and
//! `/metrics` parsed as Prometheus text.
//!
//! [`Chat`] (from `support`, re-exported here) is what a chat user does,
//! over TCP, TLS or WebSocket ([`WsClient`] here), so one test can drive
//! every transport the same way.
//! Use with `mod common; mod support; mod webclient;` in a test file.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{PrometheusType, PrometheusValue};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::common::{Server, WAIT};
pub use crate::support::Chat;

/// A WebSocket chat user on `GET /ws`, as a browser is one.
pub struct WsClient {
    /// The real client, over a blocking socket with a read timeout.
    pub ws: WebSocket<TcpStream>,
    /// The server's close frame, once it came (`Some(None)`: one without a
    /// code).
    pub close: Option<Option<CloseFrame>>,
    /// Payloads of the pongs received, in order.
    pub pongs: Vec<Vec<u8>>,
    /// The server closed the TCP connection without a close frame.
    pub no_close_frame: bool,
}

/// The URL of the chat socket at `web`.
fn ws_url(web: SocketAddr) -> String {
    format!("ws://{web}/ws")
}

impl WsClient {
    /// Upgrades a new connection to `web`; the greeting is not read yet.
    pub fn connect(web: SocketAddr) -> WsClient {
        Self::connect_with(web, &[]).unwrap_or_else(|code| panic!("upgrade refused: {code}"))
    }

    /// Upgrades with extra request `headers`; `Err(status)` if the server
    /// answered something other than `101`.
    pub fn connect_with(web: SocketAddr, headers: &[(&str, &str)]) -> Result<WsClient, u16> {
        Self::upgrade(web, headers, None)
    }

    /// Like [`WsClient::login`], with our side's buffers set by `config`
    /// (for many clients in one test).
    pub fn login_with(web: SocketAddr, name: &str, config: WebSocketConfig) -> WsClient {
        let mut c = Self::upgrade(web, &[], Some(config))
            .unwrap_or_else(|code| panic!("upgrade refused: {code}"));
        c.expect_prefix("[SERVER]: ");
        c.send(name);
        c.read_until(&format!("[SERVER]: {name} joined the chat!"));
        c
    }

    /// Upgrades a new connection to `web` with extra `headers` and our
    /// side's `config`.
    fn upgrade(
        web: SocketAddr,
        headers: &[(&str, &str)],
        config: Option<WebSocketConfig>,
    ) -> Result<WsClient, u16> {
        let stream = TcpStream::connect(web).expect("connect to the web port");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut req = ws_url(web).into_client_request().unwrap();
        for (name, value) in headers {
            let name: tungstenite::http::HeaderName = name.parse().unwrap();
            req.headers_mut()
                .insert(name, HeaderValue::from_str(value).unwrap());
        }
        match tungstenite::client::client_with_config(req, stream, config) {
            Ok((ws, resp)) => {
                assert_eq!(resp.status(), 101);
                Ok(WsClient {
                    ws,
                    close: None,
                    pongs: Vec::new(),
                    no_close_frame: false,
                })
            }
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                Err(resp.status().as_u16())
            }
            Err(e) => panic!("handshake: {e}"),
        }
    }

    /// A client on `stream`, whose upgrade request was sent by hand: reads
    /// the `101` answer (and nothing after it) first.
    pub fn after_handshake(mut stream: TcpStream) -> WsClient {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                other => panic!(
                    "no 101 answer ({other:?}): {:?}",
                    String::from_utf8_lossy(&head)
                ),
            }
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101 "),
            "{}",
            String::from_utf8_lossy(&head)
        );
        WsClient {
            ws: WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Client, None),
            close: None,
            pongs: Vec::new(),
            no_close_frame: false,
        }
    }

    /// Connects, reads the greeting, sends `name` and reads up to its own
    /// join notice.
    pub fn login(web: SocketAddr, name: &str) -> WsClient {
        let mut c = Self::connect(web);
        c.expect_prefix("[SERVER]: ");
        c.send(name);
        c.read_until(&format!("[SERVER]: {name} joined the chat!"));
        c
    }

    /// Sends one message as the client would (masked).
    pub fn send_message(&mut self, m: Message) {
        self.ws.send(m).expect("send");
    }

    /// Sends bytes straight to the socket, past the client's framing.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.ws.get_mut().write_all(bytes).expect("send raw");
    }

    /// The next message from the server; `None` once it closed (a close
    /// frame is noted in `close`). Panics on a timeout.
    pub fn next_message(&mut self) -> Option<Message> {
        loop {
            if self.close.is_some() && !self.ws.can_read() {
                return None;
            }
            match self.ws.read() {
                Ok(Message::Close(f)) => {
                    self.close = Some(f);
                    // Send the answer tungstenite queued (the server may be
                    // gone already: then there is nobody to answer).
                    let _ = self.ws.flush();
                }
                Ok(m) => return Some(m),
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    panic!("no WebSocket message within {WAIT:?}")
                }
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => {
                    self.no_close_frame = self.close.is_none();
                    return None;
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return None
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
                {
                    self.no_close_frame = self.close.is_none();
                    return None;
                }
                Err(e) => panic!("WebSocket read: {e}"),
            }
        }
    }

    /// The code of the server's close frame, after the end was read.
    pub fn close_code(&self) -> Option<u16> {
        match &self.close {
            Some(Some(f)) => Some(u16::from(f.code)),
            _ => None,
        }
    }

    /// Sends a close frame with `code`, as a browser closing its tab does.
    pub fn close_with(&mut self, code: u16) {
        self.ws
            .close(Some(CloseFrame {
                code: code.into(),
                reason: "".into(),
            }))
            .expect("send close");
    }
}

impl Chat for WsClient {
    fn send(&mut self, line: &str) {
        self.send_message(Message::text(line));
    }

    /// Every server line is one text message without its LF.
    fn try_line(&mut self) -> Option<String> {
        loop {
            match self.next_message()? {
                Message::Text(t) => {
                    let t = t.as_str().to_owned();
                    assert!(!t.contains('\n'), "a text message holds one line: {t:?}");
                    return Some(t);
                }
                Message::Pong(p) => self.pongs.push(p.to_vec()),
                Message::Ping(_) => {}
                other => panic!("unexpected message from the server: {other:?}"),
            }
        }
    }
}

/// One frame as a client sends it: masked with a fixed, nonzero key.
pub fn masked(opcode: OpCode, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut f = Frame::message(payload.to_vec(), OpCode::Data(Data::Text), fin);
    f.header_mut().opcode = opcode;
    f.header_mut().mask = Some(MASK);
    let mut out = Vec::new();
    f.format(&mut out).unwrap();
    out
}

/// A final text frame carrying `text`, masked.
pub fn masked_text(text: &[u8]) -> Vec<u8> {
    masked(OpCode::Data(Data::Text), text, true)
}

/// One frame with no mask, which a client must never send.
pub fn unmasked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut f = Frame::message(payload.to_vec(), OpCode::Data(Data::Text), true);
    f.header_mut().opcode = opcode;
    let mut out = Vec::new();
    f.format(&mut out).unwrap();
    out
}

/// The masking key of [`masked`] and [`huge_text_header`].
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The header of a final text frame that claims `len` bytes, masked with
/// [`MASK`]; its payload is to be sent through [`Masker`].
pub fn huge_text_header(len: u64) -> Vec<u8> {
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        mask: Some(MASK),
        ..FrameHeader::default()
    };
    let mut out = Vec::new();
    header.format(len, &mut out).unwrap();
    out
}

/// Masks a frame's payload sent in pieces, with [`MASK`].
#[derive(Default)]
pub struct Masker {
    /// Payload bytes masked so far.
    pos: usize,
}

impl Masker {
    /// The next piece of payload, masked.
    pub fn mask(&mut self, plain: &[u8]) -> Vec<u8> {
        let out = plain
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[(self.pos + i) % 4])
            .collect();
        self.pos += plain.len();
        out
    }
}

/// An HTTP response, read to the server's close.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub code: u16,
    /// Header fields, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// Everything the server sends on `stream` until it closes (reset counts as
/// closed); panics if it stays open for [`WAIT`].
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!(
                "the server kept the connection open ({e}); got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Parses a complete HTTP response.
pub fn parse_response(bytes: &[u8]) -> Response {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let end = match resp.parse(bytes) {
        Ok(httparse::Status::Complete(end)) => end,
        other => panic!(
            "not a complete response ({other:?}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    };
    let headers = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let code = resp.code.expect("a status code");
    let body = bytes[end..].to_vec();
    Response {
        code,
        headers,
        body,
    }
}

/// Sends `request` as it is to `web` and reads the response to the close.
pub fn request(web: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(web).expect("connect to the web port");
    s.write_all(request).expect("send the request");
    let resp = parse_response(&read_to_close(&mut s));
    if let Some(len) = resp.header("content-length") {
        assert_eq!(len.parse::<usize>().ok(), Some(resp.body.len()), "{resp:?}");
    }
    resp
}

/// `GET path` with a `Host` header.
pub fn get(web: SocketAddr, path: &str) -> Response {
    request(
        web,
        format!("GET {path} HTTP/1.1\r\nHost: {web}\r\n\r\n").as_bytes(),
    )
}

/// The upgrade request a browser sends for `/ws`, plus `extra` header lines
/// (each ending in CRLF).
pub fn upgrade_request(web: SocketAddr, extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {web}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// `/metrics`, parsed: every sample as `name` or `name{label}` (the one
/// label's value) -> value. Panics unless the body is valid Prometheus text
/// served as such.
pub fn metrics(web: SocketAddr) -> Metrics {
    let resp = get(web, "/metrics");
    assert_eq!(resp.code, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let exposition = parse_prometheus(resp.text()).expect("valid Prometheus text");
    let mut samples = Vec::new();
    for (name, family) in &exposition.families {
        let names = family.get_label_names().to_vec();
        for s in family.iter_samples() {
            let labels = s.get_labelset().expect("labels");
            let key = match names.as_slice() {
                [] => name.clone(),
                [one] => format!("{name}{{{}}}", labels.get_label_value(one).expect("value")),
                more => panic!("{name}: labels {more:?}"),
            };
            let value = match (&family.family_type, &s.value) {
                (PrometheusType::Gauge, PrometheusValue::Gauge(n)) => n.as_f64(),
                (PrometheusType::Counter, PrometheusValue::Counter(c)) => c.value.as_f64(),
                other => panic!("{name}: {other:?}"),
            };
            samples.push((key, value));
        }
    }
    Metrics(samples)
}

/// Samples of one `/metrics` scrape.
#[derive(Debug, Clone)]
pub struct Metrics(pub Vec<(String, f64)>);

impl Metrics {
    /// The value of `key` (`name` or `name{label value}`); panics if absent.
    pub fn get(&self, key: &str) -> f64 {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no sample {key} in {:?}", self.0))
    }
}

/// The server's web address (it was started with `--web-port 0`).
pub fn web(server: &Server) -> SocketAddr {
    server.web_addr.expect("the server listens for the web")
}

/// Waits until `/metrics` shows `key` at `want`; panics after [`WAIT`].
pub fn wait_metric(web: SocketAddr, key: &str, want: f64) {
    let t = std::time::Instant::now();
    loop {
        let got = metrics(web).get(key);
        if got == want {
            return;
        }
        assert!(t.elapsed() < WAIT, "{key} stayed {got}, expected {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

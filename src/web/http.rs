//! The HTTP/1.1 request head of a web connection (PROTOCOL.md section 9),
//! with no I/O.
//!
//! [`HeadReader`] collects bytes until the head is complete, never more than
//! [`MAX_HEAD`] of them (a longer head gets `431`), has `httparse` parse it
//! (a malformed one gets `400`), and decides the [`Reply`]: the page's files,
//! `/healthz`, `/metrics`, a WebSocket upgrade (RFC 6455 section 4.2), or an
//! error status. Every response but the upgrade says `Connection: close`:
//! there is no keep-alive, one request per connection, and the server closes
//! it once the response is written.

use data_encoding::BASE64;
use httparse::Header;
use tungstenite::handshake::derive_accept_key;

use super::assets;

/// The longest request head accepted, in bytes; a longer one gets `431`.
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header fields a head may have; more get `431` as well.
const MAX_HEADERS: usize = 64;

/// What the server does with a web connection once its head is in.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Write this complete response, then close the connection.
    Respond(Vec<u8>),
    /// `GET /metrics`: write [`super::metrics::Metrics::response`] of the
    /// server's counters, then close the connection.
    Metrics,
    /// A valid WebSocket upgrade: write this `101` response; from here on
    /// the connection is a chat connection, and every byte after the head
    /// goes to a [`super::ws::Decoder`].
    Upgrade(Vec<u8>),
}

/// The answer to a complete (or hopeless) head.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub reply: Reply,
    /// How many bytes of the last `data` fed belong to the head. After an
    /// upgrade, `data[consumed..]` is the client's first WebSocket bytes (a
    /// client may send its first frame right away).
    pub consumed: usize,
}

/// Collects one request head, bounded by [`MAX_HEAD`].
#[derive(Debug, Default)]
pub struct HeadReader {
    /// The head so far, when it came in more than one read (empty, with no
    /// allocation, while a head arrives whole).
    buf: Vec<u8>,
}

impl HeadReader {
    /// A reader waiting for the first byte.
    pub fn new() -> Self {
        HeadReader::default()
    }

    /// Bytes held (for tests and memory accounting).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next bytes read. `None`: the head is not complete yet.
    /// `origins` is `--web-origin`: when not empty, an upgrade needs an
    /// `Origin` that is one of them.
    pub fn feed(&mut self, data: &[u8], origins: &[String]) -> Option<Decision> {
        let old = self.buf.len();
        let new = &data[..data.len().min(MAX_HEAD - old)];
        // A head ends at an LF, so it is parsed only when one arrives: a head
        // sent a byte at a time costs one parse per line, not per byte.
        let lf = new.contains(&b'\n');
        let (reply, end) = if old == 0 {
            let done = decide(new, lf, origins);
            if done.is_none() {
                self.keep(new);
            }
            done?
        } else {
            self.keep(new);
            decide(&self.buf, lf, origins)?
        };
        self.buf = Vec::new();
        Some(Decision {
            reply,
            consumed: end.saturating_sub(old),
        })
    }

    /// Appends `bytes` to the head so far. The buffer grows by doubling but
    /// never past [`MAX_HEAD`], so a slow head holds at most 8 KiB.
    fn keep(&mut self, bytes: &[u8]) {
        let need = self.buf.len() + bytes.len();
        if need > self.buf.capacity() {
            let target = need.max(self.buf.capacity() * 2).min(MAX_HEAD);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
    }
}

/// Parses `head` if it may be complete; returns the reply and where the head
/// ends, or `None` while more may come.
fn decide(head: &[u8], lf: bool, origins: &[String]) -> Option<(Reply, usize)> {
    if lf {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(end)) => return Some((route(&req, origins), end)),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Some((Reply::Respond(error(TOO_LARGE, "")), head.len()))
            }
            Err(_) => return Some((Reply::Respond(error(BAD_REQUEST, "")), head.len())),
        }
    }
    (head.len() >= MAX_HEAD).then(|| (Reply::Respond(error(TOO_LARGE, "")), head.len()))
}

/// An HTTP status code with its reason phrase.
#[derive(Debug, Clone, Copy)]
struct Status(u16, &'static str);

const OK: Status = Status(200, "OK");
const BAD_REQUEST: Status = Status(400, "Bad Request");
const FORBIDDEN: Status = Status(403, "Forbidden");
const NOT_FOUND: Status = Status(404, "Not Found");
const METHOD_NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
const TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
const TOO_MANY: Status = Status(429, "Too Many Requests");
const UNAVAILABLE: Status = Status(503, "Service Unavailable");

/// Decides the reply to a complete, well-formed head.
fn route(req: &httparse::Request<'_, '_>, origins: &[String]) -> Reply {
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Reply::Respond(error(BAD_REQUEST, ""));
    };
    let Ok(host) = host(req.headers, version) else {
        return Reply::Respond(error(BAD_REQUEST, ""));
    };
    if method != "GET" {
        return Reply::Respond(error(METHOD_NOT_ALLOWED, "Allow: GET\r\n"));
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match path {
        "/healthz" => Reply::Respond(ok("text/plain; charset=utf-8", b"ok")),
        "/metrics" => Reply::Metrics,
        "/ws" => upgrade(req.headers, version, origins),
        _ => match assets::asset(path) {
            Some(a) => Reply::Respond(response(OK, a.content_type, a.body, host, "")),
            None => Reply::Respond(error(NOT_FOUND, "")),
        },
    }
}

/// The `Host` header, which HTTP/1.1 requires exactly once (RFC 9112
/// section 3.2). `Err`: missing, repeated, or not a plain `host[:port]`
/// (it is quoted in the Content-Security-Policy).
fn host<'h>(headers: &[Header<'h>], version: u8) -> Result<Option<&'h str>, ()> {
    let mut found = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    match (found.next(), found.next()) {
        (None, _) if version == 0 => Ok(None),
        (Some(h), None) => {
            let value = h.value.trim_ascii();
            let plain = |b: &u8| b.is_ascii_alphanumeric() || b".-_:[]".contains(b);
            if !value.is_empty() && value.len() <= 255 && value.iter().all(plain) {
                std::str::from_utf8(value).map(Some).map_err(|_| ())
            } else {
                Err(())
            }
        }
        _ => Err(()),
    }
}

/// Answers `GET /ws`: `101` for a valid upgrade from an allowed origin.
fn upgrade(headers: &[Header<'_>], version: u8, origins: &[String]) -> Reply {
    let Some(key) = handshake_key(headers, version) else {
        return Reply::Respond(error(BAD_REQUEST, "Sec-WebSocket-Version: 13\r\n"));
    };
    if !origin_allowed(headers, origins) {
        return Reply::Respond(error(FORBIDDEN, ""));
    }
    Reply::Upgrade(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key)
        )
        .into_bytes(),
    )
}

/// The `Sec-WebSocket-Key` of a valid upgrade request (RFC 6455 section
/// 4.2.1), or `None` if anything required is missing or wrong.
fn handshake_key<'h>(headers: &[Header<'h>], version: u8) -> Option<&'h [u8]> {
    let valid = version >= 1
        && has_token(headers, "upgrade", "websocket")
        && has_token(headers, "connection", "upgrade")
        && only(headers, "sec-websocket-version")? == b"13";
    let key = only(headers, "sec-websocket-key")?;
    let decoded = BASE64.decode(key).ok()?;
    (valid && decoded.len() == 16).then_some(key)
}

/// The value of the header `name` if it appears exactly once, trimmed.
fn only<'h>(headers: &[Header<'h>], name: &str) -> Option<&'h [u8]> {
    let mut found = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    match (found.next(), found.next()) {
        (Some(h), None) => Some(h.value.trim_ascii()),
        _ => None,
    }
}

/// True if a header `name` lists `token` (comma-separated, any case).
fn has_token(headers: &[Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// True if no origins are configured, or the one `Origin` is among them
/// (any case; a trailing `/` in the configured value is ignored).
fn origin_allowed(headers: &[Header<'_>], origins: &[String]) -> bool {
    if origins.is_empty() {
        return true;
    }
    let Some(origin) = only(headers, "origin") else {
        return false;
    };
    origins.iter().any(|o| {
        o.trim_end_matches('/')
            .as_bytes()
            .eq_ignore_ascii_case(origin)
    })
}

/// A `200` response with `body`, for answers that are not the page.
pub fn ok(content_type: &str, body: &[u8]) -> Vec<u8> {
    response(OK, content_type, body, None, "")
}

/// `503`: the server is full (`--max-clients`); sent without reading the
/// request.
pub fn full() -> Vec<u8> {
    error(UNAVAILABLE, "Retry-After: 5\r\n")
}

/// `429`: too many connections from this address (`--max-per-ip`).
pub fn too_many() -> Vec<u8> {
    error(TOO_MANY, "Retry-After: 5\r\n")
}

/// An error response whose body is the status line's text.
fn error(status: Status, extra_headers: &str) -> Vec<u8> {
    let body = format!("{} {}\n", status.0, status.1);
    response(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        None,
        extra_headers,
    )
}

/// A complete response that closes the connection. The security headers
/// keep the page to its own files: scripts and styles only from this
/// server (no inline ones), WebSocket connections only to `host`.
fn response(
    status: Status,
    content_type: &str,
    body: &[u8],
    host: Option<&str>,
    extra_headers: &str,
) -> Vec<u8> {
    // 'self' covers ws: and wss: only in CSP level 3 browsers, so the host is
    // named as well.
    let sockets = host.map_or(String::new(), |h| format!(" ws://{h} wss://{h}"));
    let head = format!(
        "HTTP/1.1 {} {}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         Cache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\n\
         Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; \
         img-src 'self'; connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'\r\n\
         {extra_headers}\r\n",
        status.0,
        status.1,
        body.len(),
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Cursor, Read, Write};
    use tungstenite::client::IntoClientRequest;
    use tungstenite::handshake::client::ClientHandshake;
    use tungstenite::handshake::HandshakeError;
    use tungstenite::Message;

    /// A parsed response: status, headers (lower-case names), body.
    struct Parsed {
        code: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Parsed {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Parses `bytes` with httparse, checking Content-Length against the body.
    fn parse(bytes: &[u8]) -> Parsed {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(end) = resp.parse(bytes).expect("valid response") else {
            panic!("incomplete response");
        };
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let body = bytes[end..].to_vec();
        let parsed = Parsed {
            code: resp.code.expect("status"),
            headers,
            body,
        };
        if parsed.code != 101 {
            let len: usize = parsed
                .header("content-length")
                .expect("length")
                .parse()
                .expect("number");
            assert_eq!(len, parsed.body.len());
            assert_eq!(parsed.header("connection"), Some("close"));
            assert_eq!(parsed.header("x-content-type-options"), Some("nosniff"));
        }
        parsed
    }

    /// Feeds `request` in one piece with no origin list.
    fn answer(request: &str) -> Decision {
        answer_with(request, &[])
    }

    fn answer_with(request: &str, origins: &[String]) -> Decision {
        HeadReader::new()
            .feed(request.as_bytes(), origins)
            .expect("complete")
    }

    /// The status code of the response to `request`.
    fn code(request: &str) -> u16 {
        code_with(request, &[])
    }

    fn code_with(request: &str, origins: &[String]) -> u16 {
        match answer_with(request, origins).reply {
            Reply::Respond(bytes) | Reply::Upgrade(bytes) => parse(&bytes).code,
            Reply::Metrics => 0,
        }
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// An upgrade request with `extra` header lines (each ending in CRLF).
    fn upgrade_request(extra: &str) -> String {
        format!(
            "GET /ws HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn page_with_security_headers() {
        let d = answer("GET / HTTP/1.1\r\nHost: chat.example:8080\r\n\r\n");
        let Reply::Respond(bytes) = d.reply else {
            panic!("not a response");
        };
        let r = parse(&bytes);
        assert_eq!(r.code, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.body, assets::asset("/").expect("page").body);
        let csp = r.header("content-security-policy").expect("CSP");
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self' ws://chat.example:8080 wss://chat.example:8080",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{part} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(code("GET /?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"), 200);
    }

    #[test]
    fn healthz_metrics_and_unknown_paths() {
        let d = answer("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
        let Reply::Respond(bytes) = d.reply else {
            panic!("not a response");
        };
        let r = parse(&bytes);
        assert_eq!((r.code, r.body.as_slice()), (200, &b"ok"[..]));
        assert_eq!(
            answer("GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n").reply,
            Reply::Metrics
        );
        assert_eq!(code("GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"), 404);
        assert_eq!(code("GET /healthz/ HTTP/1.1\r\nHost: h\r\n\r\n"), 404);
        assert_eq!(code("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 404);
    }

    #[test]
    fn other_methods_get_405() {
        for m in ["POST", "HEAD", "PUT", "DELETE", "OPTIONS", "BREW"] {
            let d = answer(&format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\n"));
            let Reply::Respond(bytes) = d.reply else {
                panic!("not a response");
            };
            let r = parse(&bytes);
            assert_eq!(r.code, 405, "{m}");
            assert_eq!(r.header("allow"), Some("GET"));
        }
    }

    #[test]
    fn malformed_heads_get_400() {
        for req in [
            "GET / HTTP/1.1\r\nHost: h\r\nno colon here\r\n\r\n",
            "GET / HTTP/9.9\r\nHost: h\r\n\r\n",
            "GET\r\n\r\n",
            "GET / HTTP/1.1\r\nHo st: h\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
            "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03\n",
        ] {
            assert_eq!(code(req), 400, "{req:?}");
        }
    }

    #[test]
    fn host_rules() {
        assert_eq!(code("GET / HTTP/1.1\r\n\r\n"), 400, "HTTP/1.1 needs Host");
        assert_eq!(code("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(code("GET / HTTP/1.1\r\nHost: a;b\r\n\r\n"), 400);
        assert_eq!(code("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), 200);
        assert_eq!(code("GET / HTTP/1.0\r\n\r\n"), 200, "HTTP/1.0 may omit it");
    }

    #[test]
    fn head_over_8_kib_gets_431_and_exactly_8_kib_passes() {
        let fill = |total: usize| {
            let start = "GET / HTTP/1.1\r\nHost: h\r\nX-Fill: ";
            let pad = total - start.len() - 4;
            format!("{start}{}\r\n\r\n", "a".repeat(pad))
        };
        let exact = fill(MAX_HEAD);
        assert_eq!(exact.len(), MAX_HEAD);
        assert_eq!(code(&exact), 200);
        let over = fill(MAX_HEAD + 1);
        assert_eq!(code(&over), 431);
        // The same, one byte at a time: the buffer never passes the bound.
        let mut reader = HeadReader::new();
        let mut decided = None;
        for (i, b) in over.as_bytes().iter().enumerate() {
            if let Some(d) = reader.feed(std::slice::from_ref(b), &[]) {
                decided = Some((i, d));
                break;
            }
            assert!(reader.buffered() < MAX_HEAD);
            assert!(reader.buf.capacity() <= MAX_HEAD);
        }
        let (at, d) = decided.expect("decided");
        assert_eq!(at, MAX_HEAD - 1, "decided at the 8192nd byte");
        let Reply::Respond(bytes) = d.reply else {
            panic!("not a response");
        };
        assert_eq!(parse(&bytes).code, 431);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn endless_head_without_lf_gets_431() {
        let mut reader = HeadReader::new();
        let chunk = [b'a'; 1500];
        let mut got = None;
        for _ in 0..6 {
            got = reader.feed(&chunk, &[]);
            if got.is_some() {
                break;
            }
            assert!(
                reader.buf.capacity() <= MAX_HEAD,
                "{}",
                reader.buf.capacity()
            );
        }
        let Some(Decision {
            reply: Reply::Respond(bytes),
            ..
        }) = got
        else {
            panic!("no 431: {got:?}");
        };
        assert_eq!(parse(&bytes).code, 431);
    }

    #[test]
    fn too_many_headers_get_431() {
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            code(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n")),
            431
        );
    }

    #[test]
    fn upgrade_gives_the_rfc_accept_key() {
        let d = answer(&upgrade_request(""));
        let Reply::Upgrade(bytes) = d.reply else {
            panic!("no upgrade");
        };
        let r = parse(&bytes);
        assert_eq!(r.code, 101);
        assert_eq!(r.body, b"");
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            r.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(r.header("upgrade"), Some("websocket"));
    }

    #[test]
    fn upgrade_headers_in_any_case_and_lists() {
        let req = format!(
            "GET /ws?v=2 HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\nsec-websocket-version:13\r\nsec-websocket-key:  {KEY} \r\n\r\n"
        );
        assert_eq!(code(&req), 101);
    }

    #[test]
    fn bad_upgrades_get_400() {
        let good = upgrade_request("");
        let cases = [
            ("no Upgrade", good.replace("Upgrade: websocket\r\n", "")),
            (
                "Upgrade: h2c",
                good.replace("Upgrade: websocket", "Upgrade: h2c"),
            ),
            ("no Connection", good.replace("Connection: Upgrade\r\n", "")),
            (
                "Connection: close",
                good.replace("Connection: Upgrade", "Connection: close"),
            ),
            ("version 8", good.replace("Version: 13", "Version: 8")),
            (
                "no version",
                good.replace("Sec-WebSocket-Version: 13\r\n", ""),
            ),
            (
                "no key",
                good.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
            ),
            ("key not base64", good.replace(KEY, "not base64 at all!")),
            ("key of 15 bytes", good.replace(KEY, "AAAAAAAAAAAAAAAAAAAA")),
            (
                "key of 17 bytes",
                good.replace(KEY, "AAAAAAAAAAAAAAAAAAAAAAA="),
            ),
            (
                "two keys",
                upgrade_request(&format!("Sec-WebSocket-Key: {KEY}\r\n")),
            ),
            ("HTTP/1.0", good.replace("HTTP/1.1", "HTTP/1.0")),
            (
                "plain GET /ws",
                "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n".to_string(),
            ),
        ];
        for (name, req) in cases {
            let d = answer(&req);
            let Reply::Respond(bytes) = d.reply else {
                panic!("{name}: upgraded");
            };
            let r = parse(&bytes);
            assert_eq!(r.code, 400, "{name}");
            assert_eq!(r.header("sec-websocket-version"), Some("13"), "{name}");
        }
    }

    #[test]
    fn origin_list() {
        let allowed = vec![
            "http://chat.example:8080".to_string(),
            "https://chat.example/".to_string(),
        ];
        let with = |origin: &str| upgrade_request(&format!("Origin: {origin}\r\n"));
        assert_eq!(code_with(&upgrade_request(""), &allowed), 403, "missing");
        assert_eq!(code_with(&with("http://evil.example"), &allowed), 403);
        assert_eq!(code_with(&with("null"), &allowed), 403);
        assert_eq!(code_with(&with("http://chat.example"), &allowed), 403);
        assert_eq!(code_with(&with("http://chat.example:8080"), &allowed), 101);
        assert_eq!(code_with(&with("HTTPS://Chat.Example"), &allowed), 101);
        let two = upgrade_request("Origin: http://chat.example:8080\r\nOrigin: http://x\r\n");
        assert_eq!(code_with(&two, &allowed), 403, "two origins");
        // No list: any origin, or none.
        assert_eq!(code(&with("http://evil.example")), 101);
        assert_eq!(code(&upgrade_request("")), 101);
        // Invalid upgrade headers come first: 400, not 403.
        let bad = with("http://evil.example").replace("Version: 13", "Version: 7");
        assert_eq!(code_with(&bad, &allowed), 400);
    }

    #[test]
    fn bytes_after_the_head_are_handed_back_at_every_split() {
        let head = upgrade_request("");
        let mut stream = head.clone().into_bytes();
        stream.extend_from_slice(b"\x81\x85frame");
        for cut in 0..=stream.len() {
            let mut reader = HeadReader::new();
            let (a, b) = stream.split_at(cut);
            let (reply, frames) = match reader.feed(a, &[]) {
                Some(d) => (d.reply, [&a[d.consumed..], b].concat()),
                None => {
                    let d = reader.feed(b, &[]).expect("complete");
                    (d.reply, b[d.consumed..].to_vec())
                }
            };
            assert!(matches!(reply, Reply::Upgrade(_)), "cut {cut}");
            assert_eq!(frames, &stream[head.len()..], "cut {cut}");
        }
    }

    /// An in-memory byte pipe for tungstenite: reads `input` (then blocks),
    /// records writes.
    #[derive(Default)]
    struct Wire {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Wire {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.input.read(buf)? {
                0 => Err(io::ErrorKind::WouldBlock.into()),
                n => Ok(n),
            }
        }
    }

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn real_client_handshake_accepts_our_101() {
        let request = "ws://localhost:8080/ws"
            .into_client_request()
            .expect("request");
        let mid = ClientHandshake::start(Wire::default(), request, None).expect("start");
        let Err(HandshakeError::Interrupted(mut mid)) = mid.handshake() else {
            panic!("the client should wait for our answer");
        };
        let sent = std::mem::take(&mut mid.get_mut().get_mut().output);
        let d = HeadReader::new().feed(&sent, &[]).expect("complete head");
        assert_eq!(d.consumed, sent.len());
        let Reply::Upgrade(mut response) = d.reply else {
            panic!("no upgrade for a real client");
        };
        // Our first frame may follow the 101 in the same write.
        super::super::ws::encode_text(b"welcome\n", &mut response);
        mid.get_mut().get_mut().input = Cursor::new(response);
        let (mut ws, resp) = mid.handshake().expect("client accepts the 101");
        assert_eq!(resp.status(), 101);
        assert_eq!(ws.read().expect("frame"), Message::text("welcome"));
    }
}

//! The bench's WebSocket side, as a browser speaks it to `GET /ws`: the
//! upgrade request and the check of its `101` answer, masked text frames
//! out, the server's frames in.
//!
//! Frame headers are written and parsed by tungstenite's [`FrameHeader`],
//! except the one header the server sends millions of times a second, a
//! chat line's (final text frame, no mask, under 126 bytes: two bytes),
//! which [`parse`] recognises itself so that reading frames costs the bench
//! no more than splitting lines (at saturation the bench, not the server,
//! is the limit, and the comparison with TCP would measure the bench); a
//! test holds that shortcut to tungstenite's answer for every two-byte
//! header. The handshake's key and accept value come from tungstenite too,
//! and the answer's head is parsed by `httparse`. Nothing here holds a buffer: the
//! fleet parses frames in place in its one read buffer, and keeps only the
//! start of a frame that a read cut off.

use std::io::Cursor;
use std::net::SocketAddr;

use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The longest frame header (2 bytes, 8 of length, 4 of mask).
pub const MAX_HEADER: usize = 14;

/// The largest payload the bench accepts from the server (a chat line is
/// at most a few KiB; anything far larger is a broken stream).
const MAX_PAYLOAD: u64 = 1 << 20;

/// A fresh `Sec-WebSocket-Key` (16 random bytes, base64).
pub fn new_key() -> String {
    tungstenite::handshake::client::generate_key()
}

/// The upgrade request for `GET /ws` on `host` with `key`.
pub fn upgrade_request(host: SocketAddr, key: &str) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Where the answer's head ends in `buf` (just past its blank line), once
/// it is all there.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|p| p + 4)
}

/// Checks the answer's `head` to an upgrade sent with `key`: `101` with the
/// right `Sec-WebSocket-Accept`. `Err` says what came instead.
pub fn check_answer(head: &[u8], key: &str) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(format!("bad answer: {}", String::from_utf8_lossy(head))),
    }
    if resp.code != Some(101) {
        return Err(format!(
            "upgrade refused: {} {}",
            resp.code.unwrap_or(0),
            resp.reason.unwrap_or("")
        ));
    }
    let want = derive_accept_key(key.as_bytes());
    let accept = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"));
    match accept {
        Some(h) if h.value == want.as_bytes() => Ok(()),
        _ => Err("upgrade answer without the right Sec-WebSocket-Accept".into()),
    }
}

/// What a server frame is, for the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole text message: one server line.
    Line,
    /// The server's close frame.
    Close,
    /// A ping, to be answered.
    Ping,
    /// Anything else a server may send (pong, binary, fragments): skipped.
    Other,
}

/// A frame header found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// What it is.
    pub kind: Kind,
    /// Bytes of the header.
    pub header: usize,
    /// Bytes of the payload after it.
    pub payload: usize,
}

impl Frame {
    /// Header and payload.
    pub fn len(&self) -> usize {
        self.header + self.payload
    }

    /// True for an empty frame (never: a header has 2 bytes at least).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The frame whose header starts `buf`: `Ok(None)` until the whole header
/// is there. A masked frame (servers never mask) or a huge one is an error.
#[inline]
pub fn parse(buf: &[u8]) -> Result<Option<Frame>, String> {
    // FIN and opcode 1 (text), then no mask bit and a 7-bit length.
    if let [0x81, len @ 0..=125, ..] = buf {
        return Ok(Some(Frame {
            kind: Kind::Line,
            header: 2,
            payload: usize::from(*len),
        }));
    }
    parse_header(buf)
}

/// [`parse`] for every header, through tungstenite.
fn parse_header(buf: &[u8]) -> Result<Option<Frame>, String> {
    let mut cursor = Cursor::new(buf);
    let (header, len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("bad frame from the server: {e}")),
    };
    if header.mask.is_some() {
        return Err("masked frame from the server".into());
    }
    if len > MAX_PAYLOAD {
        return Err(format!("frame of {len} bytes from the server"));
    }
    let kind = match (header.opcode, header.is_final) {
        (OpCode::Data(Data::Text), true) => Kind::Line,
        (OpCode::Control(Control::Close), _) => Kind::Close,
        (OpCode::Control(Control::Ping), _) => Kind::Ping,
        _ => Kind::Other,
    };
    Ok(Some(Frame {
        kind,
        header: cursor.position() as usize,
        payload: len as usize,
    }))
}

/// Appends one final frame of `opcode` carrying `payload`, masked with
/// `mask`, as a client must send it.
pub fn push_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], mask: [u8; 4]) {
    let header = FrameHeader {
        opcode,
        mask: Some(mask),
        ..FrameHeader::default()
    };
    header
        .format(payload.len() as u64, out)
        .expect("writing to a Vec cannot fail");
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// Appends one text message carrying `line` (without its LF), masked.
pub fn push_text(out: &mut Vec<u8>, line: &[u8], mask: [u8; 4]) {
    push_frame(out, OpCode::Data(Data::Text), line, mask);
}

/// The pong that answers a ping with `payload`, masked.
pub fn push_pong(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    push_frame(out, OpCode::Control(Control::Pong), payload, mask);
}

/// Client `i`'s masking key: fixed per client, different between clients
/// (the server's unmasking costs the same for any key).
pub fn mask_for(i: usize) -> [u8; 4] {
    let mut x = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((x ^ (x >> 31)) as u32).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use tungstenite::protocol::Role;
    use tungstenite::{Message, WebSocket};

    /// A byte pipe for tungstenite: reads `input`, drops writes.
    struct Pipe(Cursor<Vec<u8>>);

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl std::io::Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn our_frames_are_what_a_server_reads() {
        let mut out = Vec::new();
        push_text(&mut out, b"b3: hello", mask_for(3));
        push_text(&mut out, &[b'x'; 300], mask_for(4));
        push_pong(&mut out, b"tok", mask_for(5));
        let mut ws = WebSocket::from_raw_socket(Pipe(Cursor::new(out)), Role::Server, None);
        assert_eq!(ws.read().unwrap(), Message::text("b3: hello"));
        assert_eq!(ws.read().unwrap(), Message::text("x".repeat(300)));
        assert_eq!(ws.read().unwrap(), Message::Pong(b"tok".to_vec().into()));
    }

    #[test]
    fn server_frames_parse_in_place() {
        let mut buf = Vec::new();
        for (op, payload) in [
            (OpCode::Data(Data::Text), &b"alice: hi"[..]),
            (OpCode::Data(Data::Text), &[b'y'; 200][..]),
            (OpCode::Control(Control::Ping), &b"p"[..]),
            (OpCode::Control(Control::Close), &[0x03, 0xe9][..]),
        ] {
            let header = FrameHeader {
                opcode: op,
                ..FrameHeader::default()
            };
            header.format(payload.len() as u64, &mut buf).unwrap();
            buf.extend_from_slice(payload);
        }
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < buf.len() {
            let f = parse(&buf[at..]).unwrap().expect("whole header");
            kinds.push((f.kind, f.payload));
            at += f.len();
        }
        assert_eq!(
            kinds,
            vec![
                (Kind::Line, 9),
                (Kind::Line, 200),
                (Kind::Ping, 1),
                (Kind::Close, 2)
            ]
        );
        // A cut header waits for more; a masked frame is refused.
        assert_eq!(parse(&buf[..1]), Ok(None));
        let mut masked = Vec::new();
        push_text(&mut masked, b"x", [1, 2, 3, 4]);
        assert!(parse(&masked).is_err());
    }

    #[test]
    fn the_shortcut_agrees_with_tungstenite_for_every_two_byte_header() {
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                // Enough bytes after the header for any extended length or mask.
                let mut buf = vec![first, second];
                buf.extend_from_slice(&[0; 12]);
                assert_eq!(
                    parse(&buf),
                    parse_header(&buf),
                    "{first:#04x} {second:#04x}"
                );
            }
        }
    }

    #[test]
    fn answer_check_wants_101_and_the_accept_value() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(head_end(good), Some(good.len()));
        assert_eq!(check_answer(good, key), Ok(()));
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        assert!(check_answer(wrong, key).is_err());
        let full = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        assert!(check_answer(full, key).unwrap_err().contains("503"));
        assert_eq!(head_end(b"HTTP/1.1 101 OK\r\n"), None);
    }
}

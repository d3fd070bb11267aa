//! The WebSocket frame codec, server side (RFC 6455; PROTOCOL.md section 9),
//! with no I/O.
//!
//! [`Decoder`] takes a client's bytes as they arrive, split anyhow, and hands
//! out [`Event`]s. It never holds a frame: payload bytes are unmasked in place
//! in the caller's read buffer and handed out as they stream in, so a header
//! claiming 2^63 - 1 bytes costs only the bytes that really come, and what it
//! keeps between reads is a few dozen bytes. Frame headers are parsed by
//! tungstenite's [`FrameHeader`]; the rules a server enforces on top (masking,
//! reserved bits, control frames, fragmentation, UTF-8) are here.
//!
//! The encoders append one unmasked frame to a `Vec<u8>`. Server frames carry
//! no mask, so one encoding of a broadcast serves every browser.

use std::io::Cursor;

use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// Close code: normal closure (RFC 6455 section 7.4.1).
pub const NORMAL: u16 = 1000;
/// Close code: the server is going away (it shuts down).
pub const GOING_AWAY: u16 = 1001;
/// Close code: the peer broke the protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Close code: a text message was not valid UTF-8.
pub const INVALID_DATA: u16 = 1007;

/// The longest payload of a control frame (RFC 6455 section 5.5).
pub const MAX_CONTROL: usize = 125;

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// One thing the decoder found in the client's bytes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Event<'a> {
    /// The next piece of a text message, unmasked. Valid UTF-8, except that
    /// it may end inside a character that the next piece completes. Feed it
    /// to the connection's line reader.
    Text(&'a [u8]),
    /// The text message ended: feed the line reader an LF.
    TextEnd,
    /// A binary message started (once per message; its payload is skipped):
    /// send the user an error notice.
    Binary,
    /// A ping, with its payload (at most [`MAX_CONTROL`] bytes): answer with
    /// [`encode_pong`].
    Ping(&'a [u8]),
    /// The client's close frame, with its code if it gave one: answer with
    /// [`encode_close`] (echoing the code, or [`NORMAL`]) and treat it as EOF.
    /// The decoder reads nothing after it.
    Close(Option<u16>),
}

/// Why the decoder failed the connection: send `encode_close(code, reason)`,
/// then close. The decoder reads nothing after it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Failure {
    /// The close code: [`PROTOCOL_ERROR`] or [`INVALID_DATA`].
    pub code: u16,
    /// A short reason, for the close frame and the log.
    pub reason: &'static str,
}

impl Failure {
    /// A broken framing rule (close code 1002).
    fn protocol(reason: &'static str) -> Self {
        Failure {
            code: PROTOCOL_ERROR,
            reason,
        }
    }

    /// Text that is not UTF-8 (close code 1007).
    fn invalid_utf8(reason: &'static str) -> Self {
        Failure {
            code: INVALID_DATA,
            reason,
        }
    }
}

/// What the next byte from the client belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A frame header.
    Header,
    /// The payload of a text frame; `fin` if it ends its message.
    Text { fin: bool },
    /// The payload of a binary frame (skipped); `fin` as for text.
    Binary { fin: bool },
    /// The payload of a control frame, collected because it is answered whole.
    Control(Control),
    /// Nothing: a close frame came, or the connection failed.
    Done,
}

/// The data message in progress, which a continuation frame continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// None: the next data frame must start a message.
    Idle,
    /// A text message whose last frame has not come yet.
    Text,
    /// A binary message whose last frame has not come yet.
    Binary,
}

/// A control frame's payload while it arrives.
#[derive(Debug)]
struct ControlPayload {
    /// Bytes of `bytes` received so far.
    len: usize,
    /// The payload, unmasked.
    bytes: [u8; MAX_CONTROL],
}

/// The end of the text so far when it stops inside a UTF-8 character, so a
/// character split across reads or frames is checked whole.
#[derive(Debug, Default)]
struct Utf8Carry {
    /// The character's bytes so far (at most 3 are ever kept).
    bytes: [u8; 4],
    /// How many of `bytes` are kept.
    len: u8,
}

impl Utf8Carry {
    /// Checks the next piece of text. `Err(n)`: the first `n` bytes of
    /// `chunk` are valid, then comes an invalid sequence.
    fn check(&mut self, chunk: &[u8]) -> Result<(), usize> {
        let mut start = 0;
        // Finish the carried character first, one byte at a time (at most 3).
        while self.len > 0 {
            let Some(&b) = chunk.get(start) else {
                return Ok(());
            };
            self.bytes[usize::from(self.len)] = b;
            self.len += 1;
            start += 1;
            match std::str::from_utf8(&self.bytes[..usize::from(self.len)]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_some() => return Err(0),
                Err(_) => {}
            }
        }
        match std::str::from_utf8(&chunk[start..]) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(start + e.valid_up_to()),
            Err(e) => {
                let tail = &chunk[start + e.valid_up_to()..];
                self.bytes[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// True when the text so far stops inside a character.
    fn pending(&self) -> bool {
        self.len > 0
    }
}

/// Decodes one client's frames, fed in pieces of any size.
#[derive(Debug)]
pub struct Decoder {
    /// What the next byte belongs to.
    part: Part,
    /// The data message in progress, for continuation frames.
    message: Message,
    /// How many bytes of `header` are filled (a header may arrive split).
    header_len: u8,
    /// The header bytes received so far.
    header: [u8; MAX_HEADER],
    /// The current frame's masking key, rotated so `mask[0]` applies to the
    /// next payload byte.
    mask: [u8; 4],
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// The unfinished character at the end of the text so far.
    utf8: Utf8Carry,
    /// A control frame's payload: allocated only while one is being read.
    control: Option<Box<ControlPayload>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder waiting for the first frame.
    pub fn new() -> Self {
        Decoder {
            part: Part::Header,
            message: Message::Idle,
            header_len: 0,
            header: [0; MAX_HEADER],
            mask: [0; 4],
            remaining: 0,
            utf8: Utf8Carry::default(),
            control: None,
        }
    }

    /// Decodes `data` (unmasking it in place) and calls `on` for every event,
    /// in order. `on` returns `false` to stop (the connection is closing);
    /// the rest is then dropped, as after a close frame or a failure.
    pub fn feed(
        &mut self,
        data: &mut [u8],
        mut on: impl FnMut(Event<'_>) -> bool,
    ) -> Result<(), Failure> {
        let result = self.run(data, &mut on);
        if result.is_err() {
            self.part = Part::Done;
            self.control = None;
        }
        result
    }

    /// Steps through `data` until it is used up or nothing more is read.
    fn run(
        &mut self,
        data: &mut [u8],
        on: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<(), Failure> {
        let mut pos = 0;
        loop {
            match self.part {
                Part::Done => return Ok(()),
                Part::Header if pos == data.len() => return Ok(()),
                Part::Header => pos += self.read_header(&data[pos..], on)?,
                _ if self.remaining == 0 => self.end_frame(on)?,
                _ if pos == data.len() => return Ok(()),
                _ => pos += self.read_payload(&mut data[pos..], on)?,
            }
        }
    }

    /// Takes header bytes from `rest`; returns how many it used.
    fn read_header(
        &mut self,
        rest: &[u8],
        on: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<usize, Failure> {
        let old = usize::from(self.header_len);
        let take = rest.len().min(MAX_HEADER - old);
        self.header[old..old + take].copy_from_slice(&rest[..take]);
        let mut cursor = Cursor::new(&self.header[..old + take]);
        match FrameHeader::parse(&mut cursor) {
            Ok(None) => {
                self.header_len = (old + take) as u8;
                Ok(take)
            }
            Ok(Some((header, len))) => {
                let used = cursor.position() as usize - old;
                self.header_len = 0;
                self.start_frame(&header, len, on)?;
                Ok(used)
            }
            Err(_) => Err(Failure::protocol("unknown opcode")),
        }
    }

    /// Checks a frame's header against the rules and gets ready for its
    /// payload.
    fn start_frame(
        &mut self,
        header: &FrameHeader,
        len: u64,
        on: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<(), Failure> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(Failure::protocol("reserved bit set"));
        }
        let Some(mask) = header.mask else {
            return Err(Failure::protocol("unmasked client frame"));
        };
        // RFC 6455 section 5.2: the most significant bit of a 64-bit length is 0.
        if len > i64::MAX as u64 {
            return Err(Failure::protocol("frame length over 2^63 - 1"));
        }
        self.mask = mask;
        self.remaining = len;
        let fin = header.is_final;
        self.part = match header.opcode {
            OpCode::Control(op) => {
                if !fin {
                    return Err(Failure::protocol("fragmented control frame"));
                }
                if len > MAX_CONTROL as u64 {
                    return Err(Failure::protocol("control frame over 125 bytes"));
                }
                self.control = Some(Box::new(ControlPayload {
                    len: 0,
                    bytes: [0; MAX_CONTROL],
                }));
                Part::Control(op)
            }
            OpCode::Data(data) => self.start_data(data, fin, on)?,
        };
        Ok(())
    }

    /// Starts or continues a data message; returns what its payload is.
    fn start_data(
        &mut self,
        data: Data,
        fin: bool,
        on: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<Part, Failure> {
        let text = match (data, self.message) {
            (Data::Continue, Message::Idle) => {
                return Err(Failure::protocol("continuation frame without a message"))
            }
            (Data::Continue, m) => m == Message::Text,
            (Data::Text | Data::Binary, Message::Text | Message::Binary) => {
                return Err(Failure::protocol("new message inside a fragmented one"))
            }
            (Data::Text, Message::Idle) => true,
            (Data::Binary, Message::Idle) => {
                if !on(Event::Binary) {
                    return Ok(Part::Done);
                }
                false
            }
            (Data::Reserved(_), _) => return Err(Failure::protocol("unknown opcode")),
        };
        self.message = match (fin, text) {
            (true, _) => Message::Idle,
            (false, true) => Message::Text,
            (false, false) => Message::Binary,
        };
        Ok(if text {
            Part::Text { fin }
        } else {
            Part::Binary { fin }
        })
    }

    /// Takes payload bytes from `rest`; returns how many it used.
    fn read_payload(
        &mut self,
        rest: &mut [u8],
        on: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<usize, Failure> {
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(rest.len());
        self.remaining -= n as u64;
        let chunk = &mut rest[..n];
        match self.part {
            Part::Text { .. } => {
                unmask(chunk, &mut self.mask);
                let checked = self.utf8.check(chunk);
                let valid = match checked {
                    Ok(()) => n,
                    Err(valid) => valid,
                };
                if valid > 0 && !on(Event::Text(&chunk[..valid])) {
                    self.part = Part::Done;
                }
                if checked.is_err() {
                    return Err(Failure::invalid_utf8("text message not valid UTF-8"));
                }
            }
            Part::Control(_) => {
                unmask(chunk, &mut self.mask);
                if let Some(payload) = self.control.as_deref_mut() {
                    payload.bytes[payload.len..payload.len + n].copy_from_slice(chunk);
                    payload.len += n;
                }
            }
            Part::Binary { .. } | Part::Header | Part::Done => {}
        }
        Ok(n)
    }

    /// A frame's payload is complete: ends its message or answers it.
    fn end_frame(&mut self, on: &mut impl FnMut(Event<'_>) -> bool) -> Result<(), Failure> {
        let part = std::mem::replace(&mut self.part, Part::Header);
        let go = match part {
            Part::Text { fin: true } => {
                if self.utf8.pending() {
                    return Err(Failure::invalid_utf8(
                        "text message ends inside a character",
                    ));
                }
                on(Event::TextEnd)
            }
            Part::Control(op) => self.end_control(op, on)?,
            Part::Text { fin: false } | Part::Binary { .. } | Part::Header | Part::Done => true,
        };
        if !go {
            self.part = Part::Done;
        }
        Ok(())
    }

    /// A control frame is complete: hands it out. Returns `false` to stop.
    fn end_control(
        &mut self,
        op: Control,
        on: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<bool, Failure> {
        let payload = self.control.take();
        let bytes = payload.as_deref().map_or(&[][..], |p| &p.bytes[..p.len]);
        match op {
            Control::Ping => Ok(on(Event::Ping(bytes))),
            Control::Pong => Ok(true),
            Control::Close => {
                let code = close_code(bytes)?;
                on(Event::Close(code));
                Ok(false)
            }
            Control::Reserved(_) => Err(Failure::protocol("unknown opcode")),
        }
    }
}

/// The code of a close frame's payload, checked (RFC 6455 section 5.5.1).
fn close_code(payload: &[u8]) -> Result<Option<u16>, Failure> {
    match payload {
        [] => Ok(None),
        [_] => Err(Failure::protocol("close frame of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                Err(Failure::protocol("close code not allowed"))
            } else if std::str::from_utf8(reason).is_err() {
                Err(Failure::invalid_utf8("close reason not valid UTF-8"))
            } else {
                Ok(Some(code))
            }
        }
    }
}

/// XORs `buf` with the masking key, then rotates the key so it lines up
/// with the byte after `buf`.
fn unmask(buf: &mut [u8], mask: &mut [u8; 4]) {
    let key = *mask;
    let mut words = buf.chunks_exact_mut(4);
    for word in &mut words {
        for (b, k) in word.iter_mut().zip(key) {
            *b ^= k;
        }
    }
    for (b, k) in words.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
    mask.rotate_left(buf.len() % 4);
}

/// Appends one unmasked, final frame to `out`.
fn encode(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    header
        .format(payload.len() as u64, out)
        .expect("writing to a Vec cannot fail");
    out.extend_from_slice(payload);
}

/// Appends one text frame carrying `line` (a room line; its LF is not sent)
/// to `out`. The bytes are the same for every receiver.
pub fn encode_text(line: &[u8], out: &mut Vec<u8>) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    debug_assert!(std::str::from_utf8(line).is_ok(), "room lines are UTF-8");
    encode(OpCode::Data(Data::Text), line, out);
}

/// Appends the pong that answers a ping with `payload` to `out`.
pub fn encode_pong(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(
        payload.len() <= MAX_CONTROL,
        "pings carry at most 125 bytes"
    );
    encode(OpCode::Control(Control::Pong), payload, out);
}

/// Appends a close frame with `code` and `reason` (cut to fit 123 bytes, on
/// a character boundary) to `out`.
pub fn encode_close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let reason = &reason[..reason.floor_char_boundary(MAX_CONTROL - 2)];
    let mut payload = [0; MAX_CONTROL];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    encode(
        OpCode::Control(Control::Close),
        &payload[..2 + reason.len()],
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{Frame as Line, LineReader};
    use std::io::{self, Read, Write};
    use tungstenite::protocol::frame::{CloseFrame, Frame};
    use tungstenite::protocol::Role;
    use tungstenite::{Message, WebSocket};

    /// An in-memory byte pipe for tungstenite: reads `input`, records writes.
    #[derive(Default)]
    struct Wire {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Wire {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
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

    /// The bytes tungstenite's client sends for `messages` (masked, as a
    /// browser's are).
    fn client_bytes(messages: Vec<Message>) -> Vec<u8> {
        let mut ws = WebSocket::from_raw_socket(Wire::default(), Role::Client, None);
        for m in messages {
            ws.send(m).expect("in-memory send");
        }
        std::mem::take(&mut ws.get_mut().output)
    }

    /// A data frame of a fragmented message (`Message::Frame` is sent as it
    /// is, masked by the client).
    fn fragment(data: &[u8], opcode: Data, fin: bool) -> Message {
        Message::Frame(Frame::message(data.to_vec(), OpCode::Data(opcode), fin))
    }

    /// A raw frame header with a mask, for what a real client never sends.
    fn raw_header(first: u8, len: u64, masked: bool) -> Vec<u8> {
        let mut out = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => out.push(mask_bit | len as u8),
            126..=0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&[0; 4]);
        }
        out
    }

    /// Events as owned values; a failure is the last one.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Ev {
        Text(Vec<u8>),
        End,
        Binary,
        Ping(Vec<u8>),
        Close(Option<u16>),
        Fail(u16),
    }

    /// Decodes `stream` cut at `cuts` (sorted positions); adjacent text
    /// pieces are joined, since how they are cut depends on the reads.
    fn decode_cut(stream: &[u8], cuts: &[usize]) -> Vec<Ev> {
        let mut dec = Decoder::new();
        let mut events = Vec::new();
        let mut bounds = vec![0];
        bounds.extend(cuts.iter().map(|&c| c.min(stream.len())));
        bounds.push(stream.len());
        for w in bounds.windows(2) {
            let mut piece = stream[w[0]..w[1]].to_vec();
            let result = dec.feed(&mut piece, |ev| {
                events.push(match ev {
                    Event::Text(t) => Ev::Text(t.to_vec()),
                    Event::TextEnd => Ev::End,
                    Event::Binary => Ev::Binary,
                    Event::Ping(p) => Ev::Ping(p.to_vec()),
                    Event::Close(c) => Ev::Close(c),
                });
                true
            });
            if let Err(f) = result {
                events.push(Ev::Fail(f.code));
            }
        }
        join_text(events)
    }

    /// Joins adjacent text events.
    fn join_text(events: Vec<Ev>) -> Vec<Ev> {
        let mut out: Vec<Ev> = Vec::new();
        for ev in events {
            match (out.last_mut(), ev) {
                (Some(Ev::Text(prev)), Ev::Text(more)) => prev.extend_from_slice(&more),
                (_, ev) => out.push(ev),
            }
        }
        out
    }

    fn decode(stream: &[u8]) -> Vec<Ev> {
        decode_cut(stream, &[])
    }

    /// Decodes `stream` whole, then cut at every position, then one byte
    /// at a time, and checks that all agree; returns the events.
    fn decode_every_split(stream: &[u8]) -> Vec<Ev> {
        let whole = decode(stream);
        for i in 0..=stream.len() {
            assert_eq!(decode_cut(stream, &[i]), whole, "cut at {i}");
        }
        let every: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(decode_cut(stream, &every), whole, "one byte at a time");
        whole
    }

    fn text(s: &str) -> Ev {
        Ev::Text(s.as_bytes().to_vec())
    }

    #[test]
    fn decoder_state_is_small() {
        let size = std::mem::size_of::<Decoder>();
        println!("size_of::<Decoder>() = {size}");
        assert!(size <= 48, "Decoder is {size} bytes");
    }

    #[test]
    fn real_client_messages_in_any_split() {
        let stream = client_bytes(vec![
            Message::text("hello"),
            Message::text("zwei\nZeilen ✓"),
            Message::binary(vec![1, 2, 3]),
            Message::Ping(b"tok".to_vec().into()),
            Message::Pong(b"ignored".to_vec().into()),
            Message::text(""),
        ]);
        let events = decode_every_split(&stream);
        assert_eq!(
            events,
            vec![
                text("hello"),
                Ev::End,
                text("zwei\nZeilen ✓"),
                Ev::End,
                Ev::Binary,
                Ev::Ping(b"tok".to_vec()),
                Ev::End,
            ]
        );
    }

    #[test]
    fn long_text_uses_extended_lengths() {
        for len in [125, 126, 65535, 65536, 70000] {
            let s = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let stream = client_bytes(vec![Message::text(s.clone())]);
            assert_eq!(decode(&stream), vec![text(&s), Ev::End], "length {len}");
        }
    }

    #[test]
    fn close_from_real_client_then_nothing() {
        let mut ws = WebSocket::from_raw_socket(Wire::default(), Role::Client, None);
        ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .expect("in-memory close");
        let mut stream = std::mem::take(&mut ws.get_mut().output);
        stream.extend(client_bytes(vec![Message::text("after")]));
        let events = decode_every_split(&stream);
        assert_eq!(events, vec![Ev::Close(Some(1000))]);
    }

    #[test]
    fn close_payload_rules() {
        let frame = |payload: &[u8]| {
            let mut f = raw_header(0x88, payload.len() as u64, true);
            f.extend_from_slice(payload);
            f
        };
        assert_eq!(decode(&frame(b"")), vec![Ev::Close(None)]);
        assert_eq!(decode(&frame(&[0x03])), vec![Ev::Fail(PROTOCOL_ERROR)]);
        // 1005 and 1006 must never be sent; 999 is no code at all.
        for code in [1005u16, 1006, 999, 5000] {
            assert_eq!(
                decode(&frame(&code.to_be_bytes())),
                vec![Ev::Fail(PROTOCOL_ERROR)],
                "code {code}"
            );
        }
        assert_eq!(
            decode(&frame(&[0x0f, 0xa0, b'o', b'k'])),
            vec![Ev::Close(Some(4000))]
        );
        assert_eq!(
            decode(&frame(&[0x03, 0xe8, 0xff])),
            vec![Ev::Fail(INVALID_DATA)]
        );
    }

    #[test]
    fn fragmented_text_with_interleaved_ping() {
        let stream = client_bytes(vec![
            fragment(b"one ", Data::Text, false),
            Message::Ping(b"p".to_vec().into()),
            fragment(b"two ", Data::Continue, false),
            Message::Pong(Vec::new().into()),
            fragment(b"", Data::Continue, false),
            fragment(b"three", Data::Continue, true),
            Message::text("next"),
        ]);
        let events = decode_every_split(&stream);
        assert_eq!(
            events,
            vec![
                text("one "),
                Ev::Ping(b"p".to_vec()),
                text("two three"),
                Ev::End,
                text("next"),
                Ev::End,
            ]
        );
    }

    #[test]
    fn fragmented_binary_reported_once() {
        let stream = client_bytes(vec![
            fragment(b"ab", Data::Binary, false),
            Message::Ping(Vec::new().into()),
            fragment(b"cd", Data::Continue, true),
            Message::text("ok"),
        ]);
        let events = decode_every_split(&stream);
        assert_eq!(
            events,
            vec![Ev::Binary, Ev::Ping(vec![]), text("ok"), Ev::End]
        );
    }

    #[test]
    fn character_split_across_fragments_is_fine() {
        let euro = "€".as_bytes(); // three bytes
        let stream = client_bytes(vec![
            fragment(&euro[..1], Data::Text, false),
            fragment(&euro[1..2], Data::Continue, false),
            fragment(&euro[2..], Data::Continue, true),
        ]);
        assert_eq!(decode_every_split(&stream), vec![text("€"), Ev::End]);
    }

    #[test]
    fn invalid_utf8_split_across_fragments_fails_1007() {
        // E2 82 starts a three-byte character; 41 cannot continue it.
        let stream = client_bytes(vec![
            fragment(b"ok\n\xe2", Data::Text, false),
            fragment(b"\x82", Data::Continue, false),
            fragment(b"A", Data::Continue, true),
            Message::text("never"),
        ]);
        let events = decode_every_split(&stream);
        assert_eq!(
            events,
            vec![Ev::Text(b"ok\n\xe2\x82".to_vec()), Ev::Fail(INVALID_DATA)]
        );
    }

    #[test]
    fn invalid_utf8_mid_frame_hands_out_the_valid_prefix() {
        let stream = client_bytes(vec![fragment(b"abc\xffdef", Data::Text, true)]);
        let events = decode_every_split(&stream);
        assert_eq!(events, vec![text("abc"), Ev::Fail(INVALID_DATA)]);
    }

    #[test]
    fn message_ending_inside_a_character_fails_1007() {
        let stream = client_bytes(vec![fragment(b"x\xe2\x82", Data::Text, true)]);
        let events = decode_every_split(&stream);
        assert_eq!(
            events,
            vec![Ev::Text(b"x\xe2\x82".to_vec()), Ev::Fail(INVALID_DATA)]
        );
    }

    #[test]
    fn unmasked_client_frame_fails_1002() {
        let mut stream = raw_header(0x81, 2, false);
        stream.extend_from_slice(b"hi");
        assert_eq!(decode_every_split(&stream), vec![Ev::Fail(PROTOCOL_ERROR)]);
    }

    #[test]
    fn framing_violations_fail_1002() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("rsv1", raw_header(0xc1, 0, true)),
            ("rsv2", raw_header(0xa1, 0, true)),
            ("rsv3", raw_header(0x91, 0, true)),
            ("data opcode 3", raw_header(0x83, 0, true)),
            ("control opcode 0xb", raw_header(0x8b, 0, true)),
            ("fragmented ping", raw_header(0x09, 0, true)),
            ("continuation first", raw_header(0x80, 0, true)),
            ("ping of 126 bytes", raw_header(0x89, 126, true)),
            ("close of 126 bytes", raw_header(0x88, 126, true)),
            ("length with top bit", raw_header(0x81, 1 << 63, true)),
            ("new text inside text", {
                let mut s = raw_header(0x01, 0, true);
                s.extend(raw_header(0x81, 0, true));
                s
            }),
            ("binary inside text", {
                let mut s = raw_header(0x01, 0, true);
                s.extend(raw_header(0x82, 0, true));
                s
            }),
        ];
        for (name, stream) in cases {
            assert_eq!(
                decode_every_split(&stream),
                vec![Ev::Fail(PROTOCOL_ERROR)],
                "{name}"
            );
        }
    }

    #[test]
    fn ping_of_125_bytes_is_answered() {
        let payload = vec![7u8; 125];
        let stream = client_bytes(vec![Message::Ping(payload.clone().into())]);
        assert_eq!(decode_every_split(&stream), vec![Ev::Ping(payload)]);
    }

    #[test]
    fn huge_claimed_length_streams_without_holding_it() {
        let mut dec = Decoder::new();
        let mut header = raw_header(0x81, i64::MAX as u64, true);
        let mut got = 0usize;
        dec.feed(&mut header, |_| panic!("no event yet"))
            .expect("header ok");
        let mut piece = vec![b'x'; 64 * 1024];
        for _ in 0..16 {
            dec.feed(&mut piece, |ev| {
                match ev {
                    Event::Text(t) => got += t.len(),
                    other => panic!("unexpected {other:?}"),
                }
                true
            })
            .expect("payload ok");
        }
        assert_eq!(got, 16 * 64 * 1024);
        assert!(dec.control.is_none());
        assert_eq!(dec.remaining, i64::MAX as u64 - got as u64);
    }

    #[test]
    fn stop_early_drops_the_rest() {
        let mut stream = client_bytes(vec![Message::text("a"), Message::text("b")]);
        let mut dec = Decoder::new();
        let mut n = 0;
        dec.feed(&mut stream, |_| {
            n += 1;
            false
        })
        .expect("valid");
        assert_eq!(n, 1);
        let mut more = client_bytes(vec![Message::text("c")]);
        dec.feed(&mut more, |_| panic!("stopped")).expect("ignored");
    }

    /// Lines a connection would get: text pieces through a `LineReader`,
    /// each end of message as an LF. `Err(())` is a too-long line.
    fn lines(stream: &mut [u8], max_line: usize) -> Vec<Result<String, ()>> {
        let mut dec = Decoder::new();
        let mut reader = LineReader::new(max_line);
        let mut out = Vec::new();
        let mut push = |f: Line<'_>| {
            out.push(match f {
                Line::Line(l) => Ok(String::from_utf8_lossy(l).into_owned()),
                Line::TooLong => Err(()),
            });
            true
        };
        let _ = dec.feed(stream, |ev| {
            match ev {
                Event::Text(t) => {
                    reader.feed(t, &mut push);
                }
                Event::TextEnd => {
                    reader.feed(b"\n", &mut push);
                }
                _ => {}
            }
            true
        });
        out
    }

    #[test]
    fn messages_become_lines_as_on_tcp() {
        let mut stream = client_bytes(vec![
            Message::text("one"),
            Message::text("two\nthree\r"),
            fragment(b"fo", Data::Text, false),
            fragment(b"ur", Data::Continue, true),
        ]);
        let got = lines(&mut stream, 100);
        let want: Vec<Result<String, ()>> = ["one", "two", "three", "four"]
            .iter()
            .map(|s| Ok(s.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn max_line_applies_per_line_after_the_split() {
        let long = "x".repeat(11);
        let mut stream = client_bytes(vec![
            Message::text(format!("short\n{long}\nok")),
            fragment(long.as_bytes(), Data::Text, false),
            fragment(b"more", Data::Continue, true),
            Message::text("after"),
        ]);
        let got = lines(&mut stream, 10);
        assert_eq!(
            got,
            vec![
                Ok("short".to_string()),
                Err(()),
                Ok("ok".to_string()),
                Err(()),
                Ok("after".to_string()),
            ]
        );
    }

    #[test]
    fn huge_frame_is_one_too_long_line() {
        let mut stream = raw_header(0x81, i64::MAX as u64, true);
        stream.extend(vec![b'y'; 10_000]);
        assert_eq!(lines(&mut stream, 4096), vec![Err(())]);
    }

    /// Reads `bytes` as tungstenite's client would.
    fn client_reads(bytes: Vec<u8>) -> Vec<Message> {
        let wire = Wire {
            input: Cursor::new(bytes),
            output: Vec::new(),
        };
        let mut ws = WebSocket::from_raw_socket(wire, Role::Client, None);
        let mut out = Vec::new();
        while let Ok(m) = ws.read() {
            out.push(m);
        }
        out
    }

    #[test]
    fn encoded_frames_read_by_real_client() {
        let long = "ü".repeat(40_000);
        let mut out = Vec::new();
        encode_text(b"alice: hi\n", &mut out);
        encode_text(long.as_bytes(), &mut out);
        encode_text(b"", &mut out);
        encode_pong(b"tok", &mut out);
        encode_close(PROTOCOL_ERROR, &"ä".repeat(100), &mut out);
        let got = client_reads(out);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], Message::text("alice: hi"));
        assert_eq!(got[1], Message::text(long));
        assert_eq!(got[2], Message::text(""));
        assert_eq!(got[3], Message::Pong(b"tok".to_vec().into()));
        let Message::Close(Some(close)) = &got[4] else {
            panic!("not a close: {:?}", got[4]);
        };
        assert_eq!(close.code, CloseCode::Protocol);
        assert_eq!(close.reason.as_str(), "ä".repeat(61));
    }

    #[test]
    fn encoded_text_is_the_same_bytes_each_time() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_text(b"bob: same\n", &mut a);
        encode_text(b"bob: same\n", &mut b);
        assert_eq!(a, b);
        assert_eq!(a[0], 0x81);
        assert_eq!(a[1], 9, "unmasked, 9 bytes");
    }

    mod splits {
        use super::*;
        use proptest::prelude::*;

        /// One thing a client sends, and what the decoder must report.
        #[derive(Debug, Clone)]
        enum Item {
            /// A text message cut into fragments at these byte positions,
            /// with a ping after each fragment but the last when `pings`.
            Text(String, Vec<usize>, bool),
            Binary(Vec<u8>, Vec<usize>),
            Ping(Vec<u8>),
            Pong,
        }

        fn item() -> impl Strategy<Value = Item> {
            let cuts = prop::collection::vec(0usize..200, 0..4);
            prop_oneof![
                4 => ("[a-zé€𝄞\n ]{0,40}", cuts.clone(), any::<bool>())
                    .prop_map(|(s, c, p)| Item::Text(s, c, p)),
                1 => (prop::collection::vec(any::<u8>(), 0..30), cuts)
                    .prop_map(|(b, c)| Item::Binary(b, c)),
                1 => prop::collection::vec(any::<u8>(), 0..=125).prop_map(Item::Ping),
                1 => Just(Item::Pong),
            ]
        }

        /// `data` cut at `cuts` (taken modulo its length, sorted).
        fn pieces(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            at.sort_unstable();
            at.insert(0, 0);
            at.push(data.len());
            at.windows(2).map(|w| data[w[0]..w[1]].to_vec()).collect()
        }

        /// The client's frames for `items` and the events they must give.
        fn script(items: &[Item]) -> (Vec<Message>, Vec<Ev>) {
            let (mut sent, mut want) = (Vec::new(), Vec::new());
            for it in items {
                match it {
                    Item::Text(s, cuts, pings) => {
                        let parts = pieces(s.as_bytes(), cuts);
                        for (i, p) in parts.iter().enumerate() {
                            let op = if i == 0 { Data::Text } else { Data::Continue };
                            let last = i + 1 == parts.len();
                            sent.push(fragment(p, op, last));
                            want.push(Ev::Text(p.clone()));
                            if *pings && !last {
                                sent.push(Message::Ping(vec![i as u8].into()));
                                want.push(Ev::Ping(vec![i as u8]));
                            }
                        }
                        want.push(Ev::End);
                    }
                    Item::Binary(b, cuts) => {
                        let parts = pieces(b, cuts);
                        for (i, p) in parts.iter().enumerate() {
                            let op = if i == 0 { Data::Binary } else { Data::Continue };
                            sent.push(fragment(p, op, i + 1 == parts.len()));
                        }
                        want.push(Ev::Binary);
                    }
                    Item::Ping(p) => {
                        sent.push(Message::Ping(p.clone().into()));
                        want.push(Ev::Ping(p.clone()));
                    }
                    Item::Pong => sent.push(Message::Pong(Vec::new().into())),
                }
            }
            sent.push(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })));
            want.push(Ev::Close(Some(NORMAL)));
            want.retain(|e| *e != Ev::Text(Vec::new()));
            (sent, join_text(want))
        }

        proptest! {
            #[test]
            fn any_split_gives_the_same_events(
                items in prop::collection::vec(item(), 0..8),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            ) {
                let (sent, want) = script(&items);
                let stream = client_bytes(sent);
                let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
                at.sort_unstable();
                prop_assert_eq!(decode_cut(&stream, &at), want);
            }
        }
    }
}

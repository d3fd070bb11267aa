//! One connection to Redis inside the loop: RESP frames out (commands,
//! pipelined: queued during a turn, written in one go) and in (replies and
//! pub/sub messages), through the `redis-protocol` crate's sans-IO encoder
//! and decoder; the socket is a non-blocking mio stream in the same poll.

use std::io::{self, ErrorKind, Read, Write};

use mio::net::TcpStream;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};

/// Bytes read per `read` from Redis.
const CHUNK: usize = 64 * 1024;
/// A Redis that sends more than this in one reply (or stops mid-frame with
/// this much buffered) is treated as broken.
const MAX_FRAME: usize = 64 << 20;

/// A connection to Redis: its socket and its two buffers.
#[derive(Debug)]
pub struct Link {
    /// The socket, once connected (or connecting).
    pub stream: TcpStream,
    /// Encoded commands not yet written start at `out[written]`.
    out: Vec<u8>,
    /// How much of `out` the kernel has taken.
    written: usize,
    /// Bytes read that do not make a whole frame yet.
    input: Vec<u8>,
    /// WRITABLE interest is registered (output pending, or connecting).
    pub writable: bool,
    /// The TCP connection is established.
    pub connected: bool,
}

impl Link {
    /// A link around a socket that is connecting (or connected).
    pub fn new(stream: TcpStream, connected: bool) -> Self {
        Link {
            stream,
            out: Vec::new(),
            written: 0,
            input: Vec::new(),
            writable: false,
            connected,
        }
    }

    /// Queues one command: an array of bulk strings.
    pub fn command(&mut self, args: &[&[u8]]) {
        let frames: Vec<BorrowedFrame<'_>> =
            args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
        let frame = BorrowedFrame::Array(&frames);
        let start = self.out.len();
        self.out.resize(start + frame.encode_len(false), 0);
        // The buffer was sized by encode_len, so encoding cannot run out.
        let n = encode_borrowed(&mut self.out[start..], &frame, false).unwrap_or(0);
        self.out.truncate(start + n);
    }

    /// True while commands wait to be written.
    pub fn pending(&self) -> bool {
        self.written < self.out.len()
    }

    /// Writes queued commands until done or `WouldBlock`.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        Ok(())
    }

    /// Reads until `WouldBlock`, or until it read `limit` bytes in this
    /// call, and hands out every complete frame; true if it stopped at the
    /// limit (more may wait in the socket: the caller reads again later,
    /// since the poll will not say so again). EOF and protocol errors are
    /// errors: the caller drops the link.
    pub fn read(&mut self, limit: usize, mut on: impl FnMut(OwnedFrame)) -> io::Result<bool> {
        let mut buf = [0u8; CHUNK];
        let mut more = false;
        let mut taken = 0;
        loop {
            if taken >= limit {
                more = true;
                break;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    taken += n;
                    self.input.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let mut at = 0;
        while at < self.input.len() {
            match decode(&self.input[at..]) {
                Ok(Some((frame, used))) => {
                    at += used;
                    on(frame);
                }
                Ok(None) => break,
                Err(e) => return Err(io::Error::new(ErrorKind::InvalidData, e.to_string())),
            }
        }
        self.input.drain(..at);
        if self.input.len() > MAX_FRAME {
            return Err(io::Error::new(ErrorKind::InvalidData, "reply too large"));
        }
        Ok(more)
    }
}

/// The bytes of a bulk or simple string frame.
pub fn bytes(frame: &OwnedFrame) -> Option<&[u8]> {
    match frame {
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => Some(b),
        _ => None,
    }
}

/// The integer of an integer frame (or of a string holding one).
pub fn int(frame: &OwnedFrame) -> Option<i64> {
    match frame {
        OwnedFrame::Integer(i) => Some(*i),
        f => std::str::from_utf8(bytes(f)?).ok()?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        // Any socket will do for encoding: a loopback connection.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut link = Link::new(TcpStream::from_std(s), true);
        link.command(&[b"SET", b"k", b"a b"]);
        assert_eq!(link.out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n");
        let (frame, used) = decode(b":42\r\n+OK\r\n").unwrap().unwrap();
        assert_eq!((int(&frame), used), (Some(42), 5));
    }
}

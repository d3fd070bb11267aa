//! Line framing: bytes in, whole lines out (PROTOCOL.md section 1).
//!
//! TCP is a byte stream, so a [`LineReader`] keeps the unfinished tail of the
//! stream between reads and hands out each complete line exactly once, however
//! the bytes were split. Lines longer than the limit are never handed out: the
//! caller gets one [`Frame::TooLong`] per such line and the rest of it, up to
//! the next LF, is skipped.

/// One unit the framer hands to its caller.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Frame<'a> {
    /// A complete line without its LF and without a CR right before the LF.
    Line(&'a [u8]),
    /// A line passed the limit; reported once, as soon as it is known.
    TooLong,
}

/// Capacity above which an empty partial-line buffer is given back, so an idle
/// connection holds no large buffer after a burst.
const KEEP_CAPACITY: usize = 1024;

/// Reassembles lines from a byte stream.
#[derive(Debug)]
pub struct LineReader {
    /// Bytes of the line that has started but not ended yet.
    partial: Vec<u8>,
    /// True while the rest of an over-long line is being skipped.
    discarding: bool,
    /// The longest line accepted, in bytes, counting neither LF nor a CR before it.
    max_line: usize,
}

impl LineReader {
    /// A reader that accepts lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineReader {
            partial: Vec::new(),
            discarding: false,
            max_line,
        }
    }

    /// Bytes held for an unfinished line (for tests and memory accounting).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Heap capacity held by this reader.
    pub fn capacity(&self) -> usize {
        self.partial.capacity()
    }

    /// Gives back the buffer of an unfinished line when nothing waits in it
    /// and it holds more than `keep` bytes (a long line left it large);
    /// returns the bytes given back.
    pub fn shrink(&mut self, keep: usize) -> usize {
        if !self.partial.is_empty() || self.partial.capacity() <= keep {
            return 0;
        }
        let freed = self.partial.capacity();
        self.partial = Vec::new();
        freed
    }

    /// Feeds `data` in and calls `on` for every frame it completes, in order.
    /// `on` returns `false` to stop early (the connection is closing, or the
    /// loop's budget for this turn is spent). Returns how many bytes of
    /// `data` were taken: all of them, or those up to and including the LF
    /// of the last line handed out before the stop; the caller keeps or
    /// drops the rest.
    pub fn feed(&mut self, data: &[u8], mut on: impl FnMut(Frame<'_>) -> bool) -> usize {
        let mut rest = data;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let head = &rest[..nl];
                    rest = &rest[nl + 1..];
                    let keep_going = if self.discarding {
                        self.discarding = false;
                        true
                    } else if self.partial.is_empty() {
                        self.finish(head, &mut on)
                    } else {
                        let mut partial = std::mem::take(&mut self.partial);
                        partial.extend_from_slice(head);
                        let go = self.finish(&partial, &mut on);
                        partial.clear();
                        if partial.capacity() <= KEEP_CAPACITY {
                            self.partial = partial;
                        }
                        go
                    };
                    if !keep_going {
                        return data.len() - rest.len();
                    }
                }
                None => {
                    if !self.discarding {
                        // A CR may still be dropped if an LF follows, so up to
                        // max_line + 1 bytes may wait for the next read.
                        if self.partial.len() + rest.len() > self.max_line + 1 {
                            self.partial = Vec::new();
                            self.discarding = true;
                            if !on(Frame::TooLong) {
                                return data.len();
                            }
                        } else {
                            self.partial.extend_from_slice(rest);
                        }
                    }
                    return data.len();
                }
            }
        }
        data.len()
    }

    /// Hands out one finished line (CR stripped) or reports it as too long.
    fn finish(&self, line: &[u8], on: &mut impl FnMut(Frame<'_>) -> bool) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max_line {
            on(Frame::TooLong)
        } else {
            on(Frame::Line(line))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_gives_back_an_empty_buffer_only() {
        let mut r = LineReader::new(4096);
        let mut n = 0;
        r.feed(&[b'a'; 600], |_| true);
        assert_eq!(r.shrink(128), 0, "a line is waiting");
        r.feed(b"\n", |_| {
            n += 1;
            true
        });
        assert_eq!(n, 1);
        assert!(r.capacity() >= 600);
        assert!(r.shrink(128) >= 600);
        assert_eq!(r.capacity(), 0);
        r.feed(b"short", |_| true);
        r.feed(b"\n", |_| true);
        assert_eq!(r.shrink(128), 0, "small buffers stay");
    }
    fn frames(reader: &mut LineReader, chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, ()>> {
        let mut out = Vec::new();
        for c in chunks {
            reader.feed(c, |f| {
                out.push(match f {
                    Frame::Line(l) => Ok(l.to_vec()),
                    Frame::TooLong => Err(()),
                });
                true
            });
        }
        out
    }

    #[test]
    fn splits_and_merges() {
        let mut r = LineReader::new(100);
        let got = frames(&mut r, &[b"he", b"llo\nwor", b"ld\r\n\nx"]);
        assert_eq!(
            got,
            vec![Ok(b"hello".to_vec()), Ok(b"world".to_vec()), Ok(vec![])]
        );
        assert_eq!(r.buffered(), 1);
    }

    #[test]
    fn exact_limit_passes_and_limit_plus_one_fails_once() {
        let mut r = LineReader::new(4);
        let got = frames(&mut r, &[b"abcd\n", b"abcd\r\n", b"abcde\n", b"ok\n"]);
        assert_eq!(
            got,
            vec![
                Ok(b"abcd".to_vec()),
                Ok(b"abcd".to_vec()),
                Err(()),
                Ok(b"ok".to_vec())
            ]
        );
    }

    #[test]
    fn long_line_over_many_reads_reports_once() {
        let mut r = LineReader::new(4);
        let got = frames(&mut r, &[b"abc", b"def", b"ghi", b"jkl\nok\n"]);
        assert_eq!(got, vec![Err(()), Ok(b"ok".to_vec())]);
        assert_eq!(r.capacity(), 0);
    }

    #[test]
    fn cr_not_before_lf_counts() {
        let mut r = LineReader::new(4);
        // Four bytes, then a CR that turns out not to end the line.
        let got = frames(&mut r, &[b"abcd\r", b"x\n"]);
        assert_eq!(got, vec![Err(())]);
    }

    #[test]
    fn stop_early_says_how_much_was_taken() {
        let mut r = LineReader::new(10);
        let mut n = 0;
        let used = r.feed(b"a\nb\nc", |_| {
            n += 1;
            false
        });
        assert_eq!((n, used), (1, 2));
        // The caller feeds the rest later: nothing is lost or repeated.
        let got = frames(&mut r, &[&b"a\nb\nc"[used..], b"\n"]);
        assert_eq!(got, vec![Ok(b"b".to_vec()), Ok(b"c".to_vec())]);
    }
}

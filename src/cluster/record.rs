//! The text form of a [`Record`] in Redis: one line per record on the room's
//! channel (records of one script call joined by LF); in the stream the id
//! is the entry's (`XADD ... 0-ID r BODY`) and the field holds the rest.
//!
//! `ID ORIGIN CONN TAG KIND A B LINE`, separated by single spaces: `KIND` is
//! `L` (a line), `J` (A joined), `Q` (A left) or `N` (A is now B); `-`
//! stands for an empty A or B; `LINE` is the public line without its LF,
//! empty for a record without one (`ID` is then 0). Names, node ids and
//! numbers never contain spaces, so only `LINE` (which may) is the rest.
//! The Lua scripts build the same form (see `scripts.rs`).

use crate::room::cluster::{Event, Record};

/// The body of a record before the cluster gives it an id: everything
/// after `ID `.
pub fn body(origin: &str, conn: u64, tag: u64, event: &Event, line: &[u8]) -> Vec<u8> {
    let (kind, a, b) = match event {
        Event::Line => ("L", "-", "-"),
        Event::Join(n) => ("J", n.as_str(), "-"),
        Event::Leave(n) => ("Q", n.as_str(), "-"),
        Event::Rename(o, n) => ("N", o.as_str(), n.as_str()),
    };
    let mut out = format!("{origin} {conn} {tag} {kind} {a} {b} ").into_bytes();
    out.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
    out
}

/// Parses one stream entry: its entry id `0-ID` gives the record's id,
/// its field the body (the stream keeps the id only once, as the entry's).
pub fn from_stream(entry: &[u8], body: &[u8]) -> Option<Record> {
    let id = entry.strip_prefix(b"0-")?;
    if id.is_empty() || !id.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut text = Vec::with_capacity(id.len() + 1 + body.len());
    text.extend_from_slice(id);
    text.push(b' ');
    text.extend_from_slice(body);
    parse(&text)
}

/// Parses one record; `None` for anything malformed (logged by the caller,
/// never fatal: another program may write to our keys).
pub fn parse(text: &[u8]) -> Option<Record> {
    let mut it = text.splitn(8, |&b| b == b' ');
    let mut word = || it.next().and_then(|w| std::str::from_utf8(w).ok());
    let id = word()?.parse().ok()?;
    let origin = word()?.to_owned();
    let conn = word()?.parse().ok()?;
    let tag = word()?.parse().ok()?;
    let kind = word()?.to_owned();
    let a = word()?.to_owned();
    let b = word()?.to_owned();
    let rest = it.next()?;
    let event = match kind.as_str() {
        "L" => Event::Line,
        "J" => Event::Join(a),
        "Q" => Event::Leave(a),
        "N" => Event::Rename(a, b),
        _ => return None,
    };
    let line: Box<[u8]> = if rest.is_empty() {
        Box::default()
    } else {
        let mut l = rest.to_vec();
        l.push(b'\n');
        l.into()
    };
    if id == 0 && !line.is_empty() {
        return None;
    }
    Some(Record {
        id,
        origin,
        conn,
        tag,
        event,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(event: Event, line: &[u8], id: u64) -> Record {
        let mut text = format!("{id} ").into_bytes();
        text.extend(body("n1", 7, 9, &event, line));
        parse(&text).expect("parses")
    }

    #[test]
    fn every_kind_round_trips() {
        let r = round(Event::Line, b"alice: hi  there\tyou\n", 42);
        assert_eq!((r.id, r.conn, r.tag), (42, 7, 9));
        assert_eq!(r.origin, "n1");
        assert_eq!(r.event, Event::Line);
        assert_eq!(&*r.line, b"alice: hi  there\tyou\n");
        let r = round(
            Event::Join("bob".into()),
            b"[SERVER]: bob joined the chat!\n",
            3,
        );
        assert_eq!(r.event, Event::Join("bob".into()));
        let r = round(Event::Join("bob".into()), b"", 0);
        assert!(r.line.is_empty());
        let r = round(Event::Rename("a1".into(), "b2".into()), b"x\n", 5);
        assert_eq!(r.event, Event::Rename("a1".into(), "b2".into()));
        let r = round(Event::Leave("zoë".into()), b"", 0);
        assert_eq!(r.event, Event::Leave("zoë".into()));
    }

    #[test]
    fn stream_entries_take_their_id_from_the_entry() {
        let b = body("n1", 7, 9, &Event::Line, b"alice: hi\n");
        let r = from_stream(b"0-42", &b).expect("parses");
        assert_eq!(
            (r.id, r.origin.as_str(), &*r.line),
            (42, "n1", &b"alice: hi\n"[..])
        );
        assert_eq!(from_stream(b"42", &b), None);
        assert_eq!(from_stream(b"0-", &b), None);
        assert_eq!(from_stream(b"0-4x", &b), None);
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [
            &b""[..],
            b"x n1 0 0 L - - hi",
            b"1 n1 0 0 Z - - hi",
            b"1 n1 0 0 L - -",
            b"0 n1 0 0 L - - a line without an id",
            b"1 n1 zero 0 L - - hi",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse(b"1 n1 0 0 L - - ").is_some());
    }
}

//! PROTOCOL.md section 1: transport and framing, through real sockets.
mod common;
mod support;

use std::io::Write;
use std::time::Duration;

use support::{nothing_before_marker, nothing_more, room, send_bytewise};

/// §1 "one read may return half a line": a line written one byte per write is
/// delivered once, whole.
#[test]
fn line_sent_byte_by_byte_is_reassembled() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    send_bytewise(&mut c[0], b"hello there\n");
    c[1].expect("alice: hello there");
    c[0].expect("alice: hello there");
    nothing_more(&mut c[1]);
}

/// §1 + §3.2: a name written one byte per write is one name.
#[test]
fn name_sent_byte_by_byte_is_reassembled() {
    let (s, mut c) = room(&[], &["alice"]);
    let mut b = s.connect();
    b.expect_prefix("[SERVER]: ");
    send_bytewise(&mut b, b"bobby\r\n");
    b.expect_welcome("bobby");
    c[0].expect("[SERVER]: bobby joined the chat!");
}

/// §1 "or several lines": lines merged into one write are each delivered, in order.
#[test]
fn lines_merged_in_one_write_are_all_delivered_in_order() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send_raw(b"one\ntwo\r\n/me three\n/ping four\nfive\n");
    for l in ["alice: one", "alice: two", "* alice three", "alice: five"] {
        c[1].expect(l);
    }
    for l in [
        "alice: one",
        "alice: two",
        "* alice three",
        "/pong four",
        "alice: five",
    ] {
        c[0].expect(l);
    }
}

/// §1 "a name and a line merged with the login": greeting, name and first
/// chat line in one write still work.
#[test]
fn name_and_chat_merged_in_one_write() {
    let (s, mut c) = room(&[], &["alice"]);
    let mut b = s.connect();
    b.send_raw(b"bob\nhi all\n");
    b.expect_prefix("[SERVER]: "); // greeting
    b.expect_welcome("bob");
    b.expect("bob: hi all");
    c[0].expect("[SERVER]: bob joined the chat!");
    c[0].expect("bob: hi all");
}

/// §1 "a CR right before the LF is dropped" (chat lines and names).
#[test]
fn crlf_is_a_line_end() {
    let (s, mut c) = room(&[], &["alice"]);
    let mut b = s.connect();
    b.expect_prefix("[SERVER]: ");
    b.send_raw(b"bob\r\n");
    b.expect_welcome("bob");
    c[0].expect("[SERVER]: bob joined the chat!");
    b.send_raw(b"hi\r\nthere\r\n");
    c[0].expect("bob: hi");
    c[0].expect("bob: there");
}

/// §1: a CR that is not right before the LF does not end a line; as a
/// control character it is removed from the text others see.
#[test]
fn cr_not_before_lf_does_not_end_a_line() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send_raw(b"a\rb\r\r\n");
    c[1].expect("alice: ab");
    c[0].expect("alice: ab");
    nothing_more(&mut c[1]);
}

/// §1: a line of exactly `--max-line` (default 4096) bytes is delivered, with
/// or without a CR before its LF.
#[test]
fn line_of_exactly_4096_bytes_is_delivered() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    let body = "x".repeat(4096);
    c[0].send(&body);
    c[0].send_raw(format!("{body}\r\n").as_bytes());
    let want = format!("alice: {body}");
    c[1].expect(&want);
    c[1].expect(&want);
    c[0].expect(&want);
    c[0].expect(&want);
}

/// §1: a line of 4097 bytes is not delivered, the sender gets exactly one
/// notice, and the connection stays usable.
#[test]
fn line_of_4097_bytes_is_refused_with_one_notice() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send(&"y".repeat(4097));
    c[0].send_raw(format!("{}\r\n", "z".repeat(4097)).as_bytes());
    c[0].expect_prefix("[SERVER]: ");
    c[0].expect_prefix("[SERVER]: ");
    nothing_more(&mut c[0]);
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
    a.send("still here");
    b.expect("alice: still here");
}

/// §1 "exactly one error notice for it, however many reads it arrived in; the
/// rest of that line up to the next LF is discarded".
#[test]
fn long_line_over_many_reads_gets_one_notice_and_is_discarded() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].stream.set_nodelay(true).unwrap();
    let chunk = [b'q'; 1000];
    for i in 0..300 {
        c[0].send_raw(&chunk);
        if i % 50 == 0 {
            // Let the server catch up, so the line arrives in many reads.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The tail looks like a line of its own but is part of the long one.
    c[0].send_raw(b"/quit\n");
    c[0].expect_prefix("[SERVER]: ");
    nothing_more(&mut c[0]);
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

/// §1 "before or after login": an over-long line before login gets one
/// notice, is not taken as a name, and the login can go on.
#[test]
fn long_line_before_login_gets_one_notice() {
    let (s, mut c) = room(&[], &["alice"]);
    let mut b = s.connect();
    b.expect_prefix("[SERVER]: ");
    b.stream.set_nodelay(true).unwrap();
    for _ in 0..10 {
        b.send_raw(&[b'n'; 1000]);
    }
    b.send_raw(b"\n");
    b.expect_prefix("[SERVER]: ");
    b.send("/ping p1"); // answered before login too
    b.expect("/pong p1");
    b.send("bob");
    b.expect_welcome("bob");
    c[0].expect("[SERVER]: bob joined the chat!");
}

/// §1 `--max-line` is honoured, in bytes (not characters), CR and LF not counted.
#[test]
fn small_max_line_counts_bytes() {
    let (_s, mut c) = room(&["--max-line", "16"], &["alice", "bob"]);
    c[0].send(&"a".repeat(16));
    c[1].expect(&format!("alice: {}", "a".repeat(16)));
    c[0].expect(&format!("alice: {}", "a".repeat(16)));
    c[0].send_raw(format!("{}\r\n", "é".repeat(8)).as_bytes()); // 16 bytes
    c[1].expect(&format!("alice: {}", "é".repeat(8)));
    c[0].expect(&format!("alice: {}", "é".repeat(8)));
    c[0].send(&"a".repeat(17));
    c[0].expect_prefix("[SERVER]: ");
    c[0].send(&"é".repeat(9)); // 9 characters, 18 bytes
    c[0].expect_prefix("[SERVER]: ");
    c[0].send_raw(b"abcdefghijklmnop\r\r\n"); // a CR not before the LF counts
    c[0].expect_prefix("[SERVER]: ");
    c[0].send_raw(b"abcdefghijklmno\r\r\n"); // 16 bytes with that CR: delivered
    c[0].expect("alice: abcdefghijklmno");
    c[1].expect("alice: abcdefghijklmno");
    nothing_more(&mut c[0]);
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

/// §1 "Invalid UTF-8 is not an error: invalid sequences become U+FFFD".
#[test]
fn invalid_utf8_becomes_replacement_character() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send_raw(b"a\xffb\xc3(c\xe2\x82\n");
    let want = "alice: a\u{FFFD}b\u{FFFD}(c\u{FFFD}";
    c[1].expect(want);
    c[0].expect(want);
    c[0].send_raw(b"caf\xc3\xa9 ok\n"); // valid multibyte text is untouched
    c[1].expect("alice: café ok");
}

/// §1: control characters (ESC, BEL, NUL, DEL, C1; TAB kept) are removed from chat lines.
#[test]
fn control_characters_removed_from_chat() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("a\x1b[2Jb\x07c\x00d\x7fe\u{85}f\u{9b}g\th");
    let want = "alice: a[2Jbcdefg\th";
    c[1].expect(want);
    c[0].expect(want);
}

/// §1: control characters are removed from `/me` text.
#[test]
fn control_characters_removed_from_me() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/me \x07waves\x1b[0m\x00 at\tyou\u{90}");
    c[1].expect("* alice waves[0m at\tyou");
    c[0].expect("* alice waves[0m at\tyou");
}

/// §1: control characters are removed from `/msg` text (both copies).
#[test]
fn control_characters_removed_from_msg() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/msg bob \x1b]0;pwned\x07psst\x7f\tok");
    c[1].expect("[PM from alice]: ]0;pwnedpsst\tok");
    c[0].expect("[PM to bob]: ]0;pwnedpsst\tok");
}

/// §1: control characters are removed from a quit reason.
#[test]
fn control_characters_removed_from_quit_reason() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/quit \x07gone\x1b[1m\x00 home\u{9c}");
    c[0].expect_prefix("[SERVER]: ");
    c[0].expect_eof();
    let l = c[1].expect_prefix("[SERVER]: alice left the chat.");
    assert!(l.contains("gone[1m home"), "{l:?}");
    assert!(!l.chars().any(|ch| ch.is_control()), "{l:?}");
}

/// §1 "A line that is then empty is ignored" (after login and before it).
#[test]
fn lines_empty_after_cleaning_are_ignored() {
    let (s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send_raw(b"\n\r\n   \n\t\t\n\x07\x1b\x00\n \x7f \n\xc2\x85\n");
    nothing_more(&mut c[0]);
    {
        let [a, b] = &mut c[..] else { unreachable!() };
        nothing_before_marker(a, "alice", &mut [b]);
    }
    // Before login an empty line is not a (refused) name either.
    let mut n = s.connect();
    n.expect_prefix("[SERVER]: ");
    n.send_raw(b"\n  \r\n\t\n\x07\x1b\n");
    nothing_more(&mut n);
    n.send("carol");
    n.expect_welcome("carol");
}

/// §1 "Leading and trailing white space is trimmed" (chat, commands, names).
#[test]
fn leading_and_trailing_white_space_is_trimmed() {
    let (s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("   hi   there \t ");
    c[1].expect("alice: hi   there");
    c[0].expect("alice: hi   there");
    c[0].send("  /ping t1  ");
    c[0].expect("/pong t1");
    let mut n = s.connect();
    n.expect_prefix("[SERVER]: ");
    n.send(" \t carol  ");
    n.expect_welcome("carol");
    c[1].expect("[SERVER]: carol joined the chat!");
}

/// §1 "The same framing is used in both directions": every server line ends
/// in LF and is valid UTF-8 (checked by the harness on every read), even when
/// the input was not.
#[test]
fn server_lines_are_utf8_and_end_in_lf() {
    let (_s, mut c) = room(&[], &["alice"]);
    c[0].stream.write_all(b"\xfe\xff\xc0\xaf x\n").unwrap();
    let l = c[0].line();
    assert_eq!(l, "alice: \u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD} x");
}

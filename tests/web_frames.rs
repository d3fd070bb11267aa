//! PROTOCOL.md section 9, the WebSocket frames through a real socket:
//! binary messages, oversized and fragmented messages, the masking and
//! UTF-8 rules (close codes 1002 and 1007), ping and pong, the close
//! handshake. A TCP user watches what the room sees meanwhile.
mod common;
mod support;
mod webclient;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

use common::{Client, Server};
use webclient::{
    huge_text_header, masked, masked_text, metrics, unmasked, wait_metric, web, Chat, Masker,
    WsClient,
};

const BINARY: &str =
    "[SERVER]: Binary messages are not supported; send text. It was not delivered.";

/// A server, a TCP watcher and a WebSocket user `name`, both in the room.
fn pair(args: &[&str], name: &str) -> (Server, Client, WsClient) {
    let server = Server::start(args);
    let mut tcp = server.login("watcher");
    let ws = WsClient::login(web(&server), name);
    tcp.expect(&format!("[SERVER]: {name} joined the chat!"));
    (server, tcp, ws)
}

/// A data frame of a fragmented message.
fn fragment(data: &[u8], op: Data, fin: bool) -> Message {
    Message::Frame(Frame::message(data.to_vec(), OpCode::Data(op), fin))
}

/// §9: a binary message (whole or fragmented, before or after login) gets
/// the error notice, once per message, and nothing reaches the room; the
/// connection stays usable.
#[test]
fn binary_message_gets_a_notice_and_the_connection_stays_usable() {
    let server = Server::start(&[]);
    let w = web(&server);
    let mut tcp = server.login("watcher");
    let mut ws = WsClient::connect(w);
    ws.expect_prefix("[SERVER]: Welcome!");
    ws.send_message(Message::Binary(b"bin".to_vec().into()));
    ws.expect(BINARY);
    ws.send("binny");
    ws.expect_prefix("[SERVER]: Welcome to the chat, binny!");
    ws.read_until("[SERVER]: binny joined the chat!");
    tcp.expect("[SERVER]: binny joined the chat!");
    ws.send_message(Message::Binary(b"hello\n".to_vec().into()));
    ws.send_message(fragment(b"ab", Data::Binary, false));
    ws.send_message(Message::Ping(b"between".to_vec().into()));
    ws.send_message(fragment(b"c\nd", Data::Continue, false));
    ws.send_message(fragment(b"e", Data::Continue, true));
    ws.send("text again");
    ws.expect(BINARY);
    ws.expect(BINARY);
    ws.expect("binny: text again");
    assert_eq!(ws.pongs, vec![b"between".to_vec()]);
    tcp.expect("binny: text again");
    assert_eq!(metrics(w).get("chat_refused_total{binary}"), 3.0);
}

/// §9: a frame that claims 2^62 bytes is read as it comes, never held: its
/// text is one too-long line (one notice), the lines after an LF inside it
/// are lines again, so the connection stays usable, and the server's
/// memory does not grow with what was sent.
#[test]
fn a_frame_claiming_2_pow_62_bytes_is_too_long_once_and_costs_no_memory() {
    let (server, mut tcp, mut ws) = pair(&["--rate", "0"], "big");
    let before = server.rss_kib();
    let mut masker = Masker::default();
    ws.send_raw(&huge_text_header(1 << 62));
    let junk = vec![b'x'; 64 * 1024];
    const SENT: usize = 32 << 20;
    for _ in 0..SENT / junk.len() {
        ws.send_raw(&masker.mask(&junk));
    }
    ws.send_raw(&masker.mask(b"\nstill here\n/ping inside\n"));
    ws.expect("[SERVER]: Line too long (limit 4096 bytes); it was not delivered.");
    ws.expect("big: still here");
    ws.expect("/pong inside");
    tcp.expect("big: still here");
    tcp.send("and you hear me");
    ws.expect("watcher: and you hear me");
    let after = server.rss_kib();
    eprintln!(
        "2^62-byte frame: {} MiB sent; server RSS {before} KiB before, {after} KiB after",
        SENT >> 20
    );
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} to {after} KiB while {} MiB streamed",
        SENT >> 20
    );
    assert_eq!(
        metrics(web(&server)).get("chat_refused_total{too_long}"),
        1.0
    );
}

/// §9: a fragmented message is reassembled (control frames may come between
/// its fragments, a character may be split across them), and an LF inside
/// a message splits it into lines, as on TCP.
#[test]
fn fragmented_messages_are_reassembled_and_lf_splits_lines() {
    let (_server, mut tcp, mut ws) = pair(&["--rate", "0"], "frag");
    let euro = "€".as_bytes();
    ws.send_message(fragment(b"hel", Data::Text, false));
    ws.send_message(Message::Ping(b"p1".to_vec().into()));
    ws.send_message(fragment(b"lo\nwor", Data::Continue, false));
    ws.send_message(fragment(b"", Data::Continue, false));
    ws.send_message(fragment(
        &[b"ld ", &euro[..1]].concat(),
        Data::Continue,
        false,
    ));
    ws.send_message(Message::Pong(b"unasked".to_vec().into()));
    ws.send_message(fragment(&[&euro[1..], b"!"].concat(), Data::Continue, true));
    ws.send("one\ntwo\r\nthree");
    for want in [
        "frag: hello",
        "frag: world €!",
        "frag: one",
        "frag: two",
        "frag: three",
    ] {
        ws.expect(want);
        tcp.expect(want);
    }
    assert_eq!(ws.pongs, vec![b"p1".to_vec()]);
}

/// Sends `frame` raw from a logged-in WebSocket user: the server fails the
/// connection with close `code`, the user's line never reaches the room,
/// the others are told it disconnected, and it counts as a protocol drop.
fn fails_with(frame: &[u8], code: u16) {
    let (server, mut tcp, mut ws) = pair(&[], "bad");
    ws.send_raw(frame);
    assert!(ws.expect_eof().is_empty());
    assert_eq!(ws.close_code(), Some(code));
    assert!(!ws.no_close_frame);
    tcp.expect("[SERVER]: bad has disconnected.");
    support::nothing_more(&mut tcp);
    let w = web(&server);
    assert_eq!(metrics(w).get("chat_dropped_total{protocol}"), 1.0);
    drop(ws);
    wait_metric(w, "chat_connections{ws}", 0.0);
}

/// §9: an unmasked client frame fails the connection with close code 1002.
#[test]
fn unmasked_client_frame_fails_with_1002() {
    fails_with(&unmasked(OpCode::Data(Data::Text), b"hi"), 1002);
}

/// RFC 6455 as §9 requires: other framing errors fail with 1002 too.
#[test]
fn broken_framing_fails_with_1002() {
    for frame in [
        masked(OpCode::Data(Data::Continue), b"orphan", true),
        masked(OpCode::Control(Control::Ping), b"fragmented ping", false),
        masked(OpCode::Data(Data::Reserved(3)), b"", true),
    ] {
        fails_with(&frame, 1002);
    }
}

/// §9: a text message that is not valid UTF-8 fails the connection with
/// close code 1007 (RFC 6455), whether the bad byte is in one frame or a
/// character is cut off at the end of the message.
#[test]
fn invalid_utf8_text_fails_with_1007() {
    fails_with(&masked(OpCode::Data(Data::Text), b"bad \xff", true), 1007);
    let cut = [
        masked(OpCode::Data(Data::Text), b"cut \xe2", false),
        masked(OpCode::Data(Data::Continue), b"\x82", true),
    ]
    .concat();
    fails_with(&cut, 1007);
}

/// §9: a ping gets a pong with the same payload, before and after login.
#[test]
fn ping_gets_pong() {
    let server = Server::start(&[]);
    let mut ws = WsClient::connect(web(&server));
    ws.expect_prefix("[SERVER]: Welcome!");
    let payloads: [Vec<u8>; 3] = [b"hello".to_vec(), Vec::new(), vec![0xa5; 125]];
    for p in &payloads {
        ws.send_message(Message::Ping(p.clone().into()));
    }
    ws.sync("pings");
    assert_eq!(ws.pongs, payloads.to_vec());
    ws.send("pinger");
    ws.read_until("[SERVER]: pinger joined the chat!");
    ws.send_message(Message::Ping(b"member".to_vec().into()));
    ws.sync("again");
    assert_eq!(ws.pongs.last().map(Vec::as_slice), Some(&b"member"[..]));
}

/// §9: a close frame is answered with a close frame (the same code) and
/// counts as EOF: the others are told NAME has disconnected, and the
/// connection is closed.
#[test]
fn close_frame_is_answered_and_counts_as_eof() {
    for code in [1000u16, 1001, 4001] {
        let (server, mut tcp, mut ws) = pair(&[], "leaver");
        ws.close_with(code);
        assert!(ws.expect_eof().is_empty());
        assert_eq!(ws.close_code(), Some(code));
        tcp.expect("[SERVER]: leaver has disconnected.");
        support::nothing_more(&mut tcp);
        let w = web(&server);
        assert_eq!(metrics(w).get("chat_users"), 1.0);
        // Closed from the server's side as well once the client hangs up.
        drop(ws);
        wait_metric(w, "chat_connections{ws}", 0.0);
        assert_eq!(metrics(w).get("chat_dropped_total{protocol}"), 0.0);
    }
}

/// A close frame before login closes quietly: nobody is told anything.
#[test]
fn close_before_login_is_quiet() {
    let server = Server::start(&[]);
    let mut tcp = server.login("watcher");
    let mut ws = WsClient::connect(web(&server));
    ws.expect_prefix("[SERVER]: Welcome!");
    ws.close_with(1000);
    assert!(ws.expect_eof().is_empty());
    assert_eq!(ws.close_code(), Some(1000));
    // The close was handled before its answer came: a barrier now is late
    // enough.
    support::nothing_more(&mut tcp);
}

/// A client may send its first frames right behind the upgrade request, in
/// the same packet or in the one that ends the head: they are read, not
/// lost with the head.
#[test]
fn frames_right_behind_the_head_are_read() {
    let server = Server::start(&[]);
    let w = web(&server);
    let mut watcher = server.login("watcher");
    let head = webclient::upgrade_request(w, "");
    let frames = [masked_text(b"early"), masked_text(b"first words")].concat();
    // All in one write.
    let mut one = TcpStream::connect(w).unwrap();
    one.write_all(&[head.as_bytes(), &frames].concat()).unwrap();
    // The head in two writes, the second ending it and carrying the frames.
    let mut two = TcpStream::connect(w).unwrap();
    two.set_nodelay(true).unwrap();
    let cut = head.len() - 3;
    two.write_all(&head.as_bytes()[..cut]).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // very likely two reads
    let frames2 = [masked_text(b"late"), masked_text(b"second words")].concat();
    two.write_all(&[&head.as_bytes()[cut..], &frames2[..]].concat())
        .unwrap();
    for (stream, name, words) in [(one, "early", "first words"), (two, "late", "second words")] {
        let mut ws = WsClient::after_handshake(stream);
        ws.expect_prefix("[SERVER]: Welcome!");
        ws.expect_prefix(&format!("[SERVER]: Welcome to the chat, {name}!"));
        ws.read_until(&format!("[SERVER]: {name} joined the chat!"));
        ws.read_until(&format!("{name}: {words}"));
        watcher.read_until(&format!("{name}: {words}"));
    }
}

/// §3.5 and §9: a WebSocket user whose connection ends without a close
/// frame (a browser that crashed: EOF, or a reset) has disconnected.
#[test]
fn eof_or_reset_without_a_close_frame_is_a_disconnect() {
    let (server, mut tcp, ws) = pair(&[], "crash");
    ws.ws.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
    tcp.expect("[SERVER]: crash has disconnected.");
    let ws = WsClient::login(web(&server), "reset");
    tcp.expect("[SERVER]: reset joined the chat!");
    support::reset_stream(ws.ws.get_ref().try_clone().unwrap());
    drop(ws);
    tcp.expect("[SERVER]: reset has disconnected.");
}

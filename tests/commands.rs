//! PROTOCOL.md section 4: commands, through real sockets.
mod common;
mod support;

use support::{nothing_before_marker, nothing_more, room};

/// The numbers in a line, in order.
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect()
}

/// Asserts that `names` appear in `line` in this order.
fn in_order(line: &str, names: &[&str]) {
    let mut from = 0;
    for n in names {
        match line[from..].find(n) {
            Some(i) => from += i + n.len(),
            None => panic!("{n:?} missing or out of order in {line:?}"),
        }
    }
}

/// §4 "A line starting with `//` is a chat line with the first `/` removed."
#[test]
fn double_slash_sends_a_line_starting_with_slash() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("//x");
    c[0].send("//etc/passwd is a path");
    c[0].send("///three");
    for l in [
        "alice: /x",
        "alice: /etc/passwd is a path",
        "alice: //three",
    ] {
        c[1].expect(l);
        c[0].expect(l);
    }
}

/// §4 "the command word is case-insensitive".
#[test]
fn command_word_is_case_insensitive() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/PiNg Tok");
    c[0].expect("/pong Tok");
    c[0].send("/ME waves");
    c[1].expect("* alice waves");
    c[0].expect("* alice waves");
    c[0].send("/Msg bob hi");
    c[1].expect("[PM from alice]: hi");
    c[0].expect("[PM to bob]: hi");
    c[0].send("/WHO");
    c[0].expect_prefix("[SERVER]: ");
    c[0].send("/Help");
    c[0].expect_prefix("[SERVER]: ");
    c[0].send("/NICK alicia");
    c[1].expect("[SERVER]: alice is now known as alicia.");
    c[0].expect("[SERVER]: alice is now known as alicia.");
    c[0].send("/QuIt");
    c[0].expect_prefix("[SERVER]: ");
    c[0].expect_eof();
    c[1].expect("[SERVER]: alicia left the chat.");
}

/// §4 `/help`: a notice listing the commands, to the asker only.
#[test]
fn help_lists_the_commands() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/help");
    let mut text = String::new();
    for l in c[0].sync("h") {
        assert!(l.starts_with("[SERVER]: "), "{l:?}");
        text.push_str(&l);
    }
    for cmd in [
        "/help", "/who", "/nick", "/msg", "/me", "/ping", "/quit", "/history", "/ids", "/since",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from {text:?}");
    }
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

/// §4 `/who`: the number of users online and their names, sorted without
/// regard to case, to the asker only.
#[test]
fn who_counts_and_sorts_names_without_regard_to_case() {
    let (_s, mut c) = room(&[], &["zulu", "Charlie", "alpha", "Bravo"]);
    c[0].send("/who");
    let l = c[0].expect_prefix("[SERVER]: ");
    assert_eq!(numbers(&l), vec![4], "{l:?}");
    in_order(&l, &["alpha", "Bravo", "Charlie", "zulu"]);
    {
        let [z, ch, al, br] = &mut c[..] else {
            unreachable!()
        };
        nothing_before_marker(z, "zulu", &mut [ch, al, br]);
    }
    // After one leaves, the count and list follow.
    let charlie = c.remove(1);
    charlie.shutdown_write();
    c[0].expect("[SERVER]: Charlie has disconnected.");
    c[0].send("/WHO");
    let l = c[0].expect_prefix("[SERVER]: ");
    assert_eq!(numbers(&l), vec![3], "{l:?}");
    in_order(&l, &["alpha", "Bravo", "zulu"]);
    assert!(!l.contains("Charlie"), "{l:?}");
}

/// §4 `/nick NEW`: rename; everyone gets `[SERVER]: OLD is now known as NEW.`;
/// the new name is used from then on and the old one is free.
#[test]
fn nick_renames_and_tells_everyone() {
    let (s, mut c) = room(&[], &["alice", "bob", "carol"]);
    c[0].send("/nick alicia");
    for u in c.iter_mut() {
        u.expect("[SERVER]: alice is now known as alicia.");
    }
    c[0].send("hi");
    for u in c.iter_mut() {
        u.expect("alicia: hi");
    }
    c[1].send("/msg ALICIA psst");
    c[0].expect("[PM from bob]: psst");
    c[1].expect("[PM to alicia]: psst");
    c[1].send("/msg alice psst");
    c[1].expect_prefix("[SERVER]: "); // nobody is called alice now
    c[1].send("/who");
    let l = c[1].expect_prefix("[SERVER]: ");
    in_order(&l, &["alicia", "bob", "carol"]);
    // The old name is free.
    let _new_alice = s.login("ALICE");
    for u in c.iter_mut() {
        u.expect("[SERVER]: ALICE joined the chat!");
    }
}

/// §4 `/nick` follows the login rules: bad, reserved and taken names are
/// refused with a notice to the asker only, and the name stays.
#[test]
fn nick_follows_the_name_rules() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    let long = "n".repeat(33);
    for bad in [
        "a", &long, "a:b", "a b", "[x]", "x*y", "x/y", "server", "ADMIN", "bob", "BOB", "",
    ] {
        c[0].send(&format!("/nick {bad}"));
        c[0].expect_prefix("[SERVER]: ");
    }
    nothing_more(&mut c[0]);
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
    a.send(&format!("/nick {}", "é".repeat(32)));
    let want = format!("[SERVER]: alice is now known as {}.", "é".repeat(32));
    b.expect(&want);
    a.expect(&want);
}

/// §4 `/nick`: changing only the case of one's own name is allowed.
#[test]
fn nick_may_change_the_case_of_ones_own_name() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/nick ALICE");
    c[1].expect("[SERVER]: alice is now known as ALICE.");
    c[0].expect("[SERVER]: alice is now known as ALICE.");
    c[0].send("/nick Alice");
    c[1].expect("[SERVER]: ALICE is now known as Alice.");
    c[0].expect("[SERVER]: ALICE is now known as Alice.");
    c[0].send("hey");
    c[1].expect("Alice: hey");
}

/// §4 `/msg NAME TEXT`: `[PM from NAME]: TEXT` to the receiver, `[PM to NAME]:
/// TEXT` to the sender, NAME matched without regard to case; nobody else sees it.
#[test]
fn msg_is_private_and_matches_names_without_regard_to_case() {
    let (_s, mut c) = room(&[], &["alice", "Bob", "carol"]);
    c[0].send("/msg bOB  meet me at: 5 *sharp*");
    c[1].expect("[PM from alice]: meet me at: 5 *sharp*");
    c[0].expect("[PM to Bob]: meet me at: 5 *sharp*");
    let [a, b, ca] = &mut c[..] else {
        unreachable!()
    };
    nothing_before_marker(a, "alice", &mut [b, ca]);
}

/// §4 `/msg` to an unknown NAME gets an error notice; nothing is delivered.
#[test]
fn msg_to_unknown_name_is_an_error() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/msg nobody hello");
    let l = c[0].expect_prefix("[SERVER]: ");
    assert!(l.contains("nobody"), "{l:?}");
    nothing_more(&mut c[0]);
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

/// §4 `/msg` without text (or without a name) gets an error notice; nothing
/// is delivered.
#[test]
fn msg_without_text_is_an_error() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    for bad in ["/msg bob", "/msg bob   ", "/msg", "/msg bob \x07\x1b"] {
        c[0].send(bad);
        c[0].expect_prefix("[SERVER]: ");
    }
    nothing_more(&mut c[0]);
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

/// §4 `/me TEXT`: everyone, the sender included, gets `* NAME TEXT`.
#[test]
fn me_is_an_action_to_everyone() {
    let (_s, mut c) = room(&[], &["alice", "bob", "carol"]);
    c[2].send("/me waves at everyone");
    for u in c.iter_mut() {
        u.expect("* carol waves at everyone");
    }
}

/// §4 `/ping [TOKEN]`: `/pong TOKEN` or `/pong`, and only the asker sees it.
#[test]
fn ping_answers_pong_to_the_asker_only() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/ping abc123");
    c[0].expect("/pong abc123");
    c[0].send("/ping");
    c[0].expect("/pong");
    c[0].send("/ping   spaced  ");
    c[0].expect("/pong spaced");
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

/// §4 anything else: an error notice naming the unknown command and pointing at `/help`.
#[test]
fn unknown_command_is_named_and_points_to_help() {
    let (_s, mut c) = room(&[], &["alice", "bob"]);
    c[0].send("/frobnicate now");
    let l = c[0].expect_prefix("[SERVER]: ");
    assert!(l.contains("frobnicate"), "{l:?}");
    assert!(l.contains("/help"), "{l:?}");
    c[0].send("/");
    c[0].expect_prefix("[SERVER]: ");
    nothing_more(&mut c[0]);
    let [a, b] = &mut c[..] else { unreachable!() };
    nothing_before_marker(a, "alice", &mut [b]);
}

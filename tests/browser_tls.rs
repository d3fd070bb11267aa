//! The chat page over HTTPS and WSS in a real browser (PROTOCOL.md section
//! 11): headless Chromium that trusts the test CA the way a Linux user
//! does (its NSS database; see `Chromium::launch_trusting`), with
//! certificate errors not ignored. Needs Debian's `chromium` and
//! `libnss3-tools`; `scripts/test.sh` installs them.

mod browser_support;
mod common;
mod tls_support;

use browser_support::{wait_web_url, Chromium, Viewport};
use serde_json::json;
use tls_support::{tls_server, Pki};

/// A page over HTTPS joins the room over WSS and chats with a TCP user; a
/// browser that does not trust the CA gets no page at all.
#[test]
fn the_page_over_https_chats_over_wss_with_a_tcp_user() {
    let pki = Pki::new("chatroom browser test CA");
    let (cert, key, _) = pki.server("srv", &["localhost"]);
    let server = tls_server(&cert, &key, &["--web-port", "0"]);
    let url = wait_web_url(&server);
    assert!(url.starts_with("https://localhost:"), "{url}");

    let chrome = Chromium::launch_trusting(&pki.ca);
    let page = chrome.open(&url, Viewport::Desktop);
    assert_eq!(page.eval("location.protocol"), json!("https:"));
    page.login("alice");
    page.wait_online(&["alice"]);
    assert_eq!(
        page.eval(
            "performance.getEntriesByType('resource').every(e => e.name.startsWith('https://'))"
        ),
        json!(true),
        "every file over HTTPS"
    );

    let mut tcp = server.login("tcptom");
    page.wait_online(&["alice", "tcptom"]);
    page.say("hello over wss");
    tcp.read_until("alice: hello over wss");
    tcp.send("hello over tcp");
    let m = page.wait_message("tcptom's line", |m| {
        m.kind == "chat" && m.text == "hello over tcp"
    });
    assert_eq!(m.who.as_deref(), Some("tcptom"));
    page.screenshot("https-desktop");

    // A CA the browser does not trust: the page never loads.
    let other = Pki::new("a CA nobody trusts");
    let (cert, key, _) = other.server("srv", &["localhost"]);
    let untrusted = tls_server(&cert, &key, &["--web-port", "0"]);
    let refused = chrome
        .try_open(&wait_web_url(&untrusted), Viewport::Desktop)
        .err()
        .expect("an untrusted certificate showed the page");
    assert!(refused.contains("ERR_CERT_AUTHORITY_INVALID"), "{refused}");
}

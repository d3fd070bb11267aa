//! The chat page in a real browser: Debian's headless Chromium (see
//! `tests/browser_support`). Without Chromium these tests fail and say what
//! to install; `scripts/test.sh` installs it.
//!
//! Screenshots land in `target/browser-test/`.

mod browser_support;
mod common;

use browser_support::{
    out_dir, port_of, wait_web_url, web_url_in, Chromium, Msg, StaticSite, Viewport,
};
use common::Server;
use serde_json::json;

/// True when the page is no wider than its window (nothing to scroll sideways).
const FITS: &str = "document.documentElement.scrollWidth <= window.innerWidth";

/// The page's files, as compiled into the binary, load in Chromium and show
/// the name prompt; nothing is loaded from anywhere else; a name with no
/// chat server behind the page gets a clear answer in the prompt.
#[test]
fn the_embedded_page_loads_and_asks_for_a_name() {
    let site = StaticSite::start();
    let chrome = Chromium::launch();
    let page = chrome.open(&site.url(), Viewport::Desktop);

    page.wait_until(
        "the name prompt, focused",
        "document.getElementById('app').dataset.state === 'prompt' && \
         document.activeElement === document.getElementById('name')",
    );
    assert_eq!(page.eval("document.title"), json!("chatroom"));
    assert_eq!(
        page.eval("getComputedStyle(document.getElementById('login')).display"),
        json!("grid"),
        "the prompt is shown (style.css applied)"
    );
    assert_eq!(
        page.eval("getComputedStyle(document.getElementById('join')).backgroundColor"),
        json!("rgb(53, 99, 233)"),
        "style.css colours the Join button"
    );
    assert_eq!(
        page.eval("document.querySelector('#login h1').textContent"),
        json!("Join the chat")
    );
    assert_eq!(
        page.eval("document.getElementById('entry').placeholder"),
        json!("Write here")
    );
    assert_eq!(
        page.eval("document.getElementById('send').textContent"),
        json!("Send")
    );
    assert_eq!(
        page.eval("document.getElementById('conn-text').textContent"),
        json!("Not connected")
    );
    assert_eq!(
        page.eval(
            "performance.getEntriesByType('resource').every(e => e.name.startsWith(location.origin + '/'))"
        ),
        json!(true),
        "every file comes from the page's own server"
    );
    let shot = page.screenshot("prompt-desktop");

    page.resize(Viewport::Phone);
    page.wait_until("the page fits 375 px", FITS);
    let phone = page.screenshot("prompt-375");

    // No chat server answers at /ws here (404): the prompt says so and tries again.
    page.enter_name("alice");
    page.wait_until(
        "an inline connection error",
        "!document.getElementById('login-error').hidden && \
         document.getElementById('login-error').textContent.startsWith('Cannot reach the server')",
    );
    let failed = page.screenshot("prompt-no-server-375");
    let paths = site.paths();
    for want in ["/", "/app.js", "/style.css", "/icon.svg", "/ws"] {
        assert!(
            paths.iter().any(|p| p == want),
            "{want} asked for: {paths:?}"
        );
    }
    assert!(
        paths
            .iter()
            .all(|p| chatroom::web::assets::asset(p).is_some() || p == "/ws"),
        "the page asks only for its own files and /ws: {paths:?}"
    );
    eprintln!(
        "screenshots: {} {} {}",
        shot.display(),
        phone.display(),
        failed.display()
    );
}

/// The server's log line with the page's address is read whatever its
/// wording around the URL.
#[test]
fn the_page_url_is_read_from_the_log() {
    for (log, want) in [
        (
            "INFO  web: http://127.0.0.1:41234/\n",
            "http://127.0.0.1:41234/",
        ),
        (
            "open http://127.0.0.1:8080 in a browser",
            "http://127.0.0.1:8080/",
        ),
        (
            "page at http://[::1]:8080/index.html.",
            "http://[::1]:8080/",
        ),
        (
            "listening on 127.0.0.1:5\nweb (https://localhost:8443/)",
            "https://localhost:8443/",
        ),
    ] {
        assert_eq!(web_url_in(log).as_deref(), Some(want), "{log:?}");
    }
    assert_eq!(web_url_in("listening on 127.0.0.1:53000"), None);
    assert_eq!(port_of("http://127.0.0.1:41234/"), 41234);
    assert_eq!(port_of("http://[::1]:8080/"), 8080);
}

/// The page's reading of server lines (`Lines`, `Names` in app.js), run in
/// the browser on the lines PROTOCOL.md defines.
#[test]
fn the_page_reads_every_kind_of_server_line() {
    let site = StaticSite::start();
    let chrome = Chromium::launch();
    let page = chrome.open(&site.url(), Viewport::Desktop);
    page.wait_until("app.js", "typeof Lines === 'object'");
    let parse = |line: &str| {
        page.eval(&format!(
            "Lines.parse({})",
            browser_support::js_string(line)
        ))
    };

    let cases = [
        (
            "alice: hi",
            json!({"kind": "chat", "name": "alice", "text": "hi"}),
        ),
        (
            "Zoë-2.x: a: b",
            json!({"kind": "chat", "name": "Zoë-2.x", "text": "a: b"}),
        ),
        // A chat line that looks like a notice stays a chat line.
        (
            "bob: [SERVER]: eve joined the chat!",
            json!({"kind": "chat", "name": "bob", "text": "[SERVER]: eve joined the chat!"}),
        ),
        (
            "* bob waves at you",
            json!({"kind": "action", "name": "bob", "text": "waves at you"}),
        ),
        (
            "[PM from bob]: psst",
            json!({"kind": "pm-from", "name": "bob", "text": "psst"}),
        ),
        (
            "[PM to carol]: hi there",
            json!({"kind": "pm-to", "name": "carol", "text": "hi there"}),
        ),
        (
            "[SERVER]: Welcome to the chat, bob! Type /help for the commands, /quit to leave.",
            json!({"kind": "notice", "event": null,
                   "text": "Welcome to the chat, bob! Type /help for the commands, /quit to leave."}),
        ),
        (
            "[SERVER]: bob joined the chat!",
            json!({"kind": "notice", "event": "join", "name": "bob", "text": "bob joined the chat!"}),
        ),
        (
            "[SERVER]: bob left the chat.",
            json!({"kind": "notice", "event": "leave", "name": "bob", "text": "bob left the chat."}),
        ),
        (
            "[SERVER]: al left the chat. (bye all)",
            json!({"kind": "notice", "event": "leave", "name": "al", "text": "al left the chat. (bye all)"}),
        ),
        (
            "[SERVER]: bo has disconnected.",
            json!({"kind": "notice", "event": "leave", "name": "bo", "text": "bo has disconnected."}),
        ),
        (
            "[SERVER]: bo has disconnected (timed out).",
            json!({"kind": "notice", "event": "leave", "name": "bo", "text": "bo has disconnected (timed out)."}),
        ),
        (
            "[SERVER]: bo has disconnected (too slow to read).",
            json!({"kind": "notice", "event": "leave", "name": "bo",
                   "text": "bo has disconnected (too slow to read)."}),
        ),
        (
            "[SERVER]: zed is now known as ZED.",
            json!({"kind": "notice", "event": "nick", "old": "zed", "name": "ZED",
                   "text": "zed is now known as ZED."}),
        ),
        (
            "[SERVER]: 3 users online: Amy, bob, zed",
            json!({"kind": "notice", "event": "who", "names": ["Amy", "bob", "zed"],
                   "text": "3 users online: Amy, bob, zed"}),
        ),
        (
            "[SERVER]: 1 user online: Amy",
            json!({"kind": "notice", "event": "who", "names": ["Amy"], "text": "1 user online: Amy"}),
        ),
        (
            "[SERVER]: History (3 lines):",
            json!({"kind": "notice", "event": "history", "text": "History (3 lines):"}),
        ),
        (
            "[SERVER]: End of history.",
            json!({"kind": "notice", "event": "history-end", "text": "End of history."}),
        ),
        (
            "[SERVER]: Sorry, the name bob is taken. Please choose another name:",
            json!({"kind": "notice", "event": "sorry",
                   "text": "Sorry, the name bob is taken. Please choose another name:"}),
        ),
        (
            "/pong k7",
            json!({"kind": "pong", "token": "k7", "text": "/pong k7"}),
        ),
        (
            "/pong",
            json!({"kind": "pong", "token": "", "text": "/pong"}),
        ),
        (
            "<img src=x onerror=alert(1)>",
            json!({"kind": "other", "text": "<img src=x onerror=alert(1)>"}),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse(line), want, "{line}");
    }

    let split = |line: &str| {
        page.eval(&format!(
            "Lines.splitId({})",
            browser_support::js_string(line)
        ))
    };
    assert_eq!(
        split("@1042 alice: hi"),
        json!({"id": "1042", "rest": "alice: hi"})
    );
    assert_eq!(
        split("@7 [SERVER]: bob joined the chat!"),
        json!({"id": "7", "rest": "[SERVER]: bob joined the chat!"})
    );
    for not_an_id in [
        "@x alice: hi",
        "@12alice: hi",
        "@ 12 hi",
        "alice: @5 hi",
        "[SERVER]: @5 x",
    ] {
        assert_eq!(
            split(not_an_id),
            json!({"id": null, "rest": not_an_id}),
            "{not_an_id}"
        );
    }

    for (text, quits) in [
        ("/quit", true),
        ("/QUIT bye all", true),
        ("  /quit  ", true),
        ("!quit", true),
        ("{EXIT}", true),
        ("/quitter", false),
        ("quit", false),
        ("//quit", false),
    ] {
        let got = page.eval(&format!(
            "Lines.isQuit({})",
            browser_support::js_string(text)
        ));
        assert_eq!(got, json!(quits), "{text:?}");
    }

    // After a reconnect a refused name is asked for again for 10 s, then name_, name__, ...
    assert_eq!(
        page.eval(
            "(() => { const n = new Names('bob'); \
               return [n.refused(0), n.refused(1000), n.refused(9500), n.refused(10000), n.refused(10000), n.trying]; })()"
        ),
        json!([{"retryAt": 1000}, {"retryAt": 2000}, {"retryAt": 10000}, {"next": "bob_"}, {"next": "bob__"}, "bob__"])
    );
    assert_eq!(
        page.eval("variant('é'.repeat(32), 1)"),
        json!(format!("{}_", "é".repeat(31)))
    );
    assert_eq!(page.eval("variant('bob', 32)"), json!(null));

    // The page's WebSocket address follows its own.
    assert_eq!(
        page.eval("wsUrl()"),
        json!(format!("ws://{}/ws", site.addr))
    );
}

/// The browser scenario against the real server: two page users
/// and one TCP user log in, chat, `/me`, `/msg`, rename and leave; the page
/// shows each kind of line as what it is and a line of HTML as text; the
/// server is killed and started again on the same ports and the pages come
/// back by themselves and resume with no line lost or shown twice; closing
/// a tab leaves the room.
///
/// Needs from chat-server: `--web-port 0` (and a given port), a log line
/// with the page's `http://` address (see `browser_support::web_url_in`),
/// `GET /` and the page's files from `chatroom::web::assets`, `GET /ws`,
/// `/ids on`, `/since ID` and `/history N` (section 8) and `--history-db`
/// so ids go on across the restart.
#[test]
fn pages_and_a_tcp_user_share_the_room_and_the_page_resumes_after_a_restart() {
    let db = out_dir().join(format!("browser-history-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let db_arg = db.to_str().expect("UTF-8 path").to_owned();
    let server = Server::start(&["--web-port", "0", "--history-db", &db_arg]);
    let url = wait_web_url(&server);
    let chrome = Chromium::launch();
    let alice = chrome.open(&url, Viewport::Desktop);
    let bob = chrome.open(&url, Viewport::Phone);

    alice.login("alice");
    alice.wait_online(&["alice"]);

    // A taken name is refused in the prompt, which asks again.
    bob.enter_name("ALICE");
    bob.wait_until(
        "the refusal in the prompt",
        "!document.getElementById('login-error').hidden && \
         document.getElementById('login-error').textContent.includes('taken')",
    );
    bob.login("bob");
    alice.wait_message("bob's join", |m| {
        is_event(m, "join", "bob joined the chat!")
    });

    let mut carol = server.login("carol");
    for p in [&alice, &bob] {
        p.wait_online(&["alice", "bob", "carol"]);
    }

    alice.say("hello from alice");
    carol.read_until("alice: hello from alice");
    for p in [&alice, &bob] {
        let m = p.wait_message("alice's line", |m| {
            m.kind == "chat" && m.text == "hello from alice"
        });
        assert_eq!(m.who.as_deref(), Some("alice"));
        assert_eq!(
            m.own,
            std::ptr::eq(p, &alice),
            "own lines look different: {m}"
        );
    }

    carol.send("hi from carol");
    for p in [&alice, &bob] {
        let m = p.wait_message("carol's line", |m| {
            m.kind == "chat" && m.text == "hi from carol"
        });
        assert_eq!((m.who.as_deref(), m.own), (Some("carol"), false));
    }

    bob.say("/me waves");
    carol.read_until("* bob waves");
    for p in [&alice, &bob] {
        let m = p.wait_message("bob's action", |m| m.kind == "action" && m.text == "waves");
        assert_eq!(m.who.as_deref(), Some("bob"));
    }

    alice.say("/msg carol psst");
    carol.read_until("[PM from alice]: psst");
    let m = alice.wait_message("alice's PM", |m| m.kind == "pm-to" && m.text == "psst");
    assert_eq!(m.who.as_deref(), Some("carol"));

    carol.send("/msg bob only for bob");
    let m = bob.wait_message("the PM to bob", |m| {
        m.kind == "pm-from" && m.text == "only for bob"
    });
    assert_eq!(m.who.as_deref(), Some("carol"));

    let html = "<img src=x onerror=alert(1)>";
    carol.send(html);
    for p in [&alice, &bob] {
        p.wait_message("the HTML line as text", |m| {
            m.kind == "chat" && m.text == html
        });
        assert_eq!(
            p.eval("document.querySelectorAll('#messages img').length"),
            json!(0)
        );
    }

    bob.say("/nick robert");
    carol.read_until("[SERVER]: bob is now known as robert.");
    for p in [&alice, &bob] {
        p.wait_message("the rename", |m| {
            is_event(m, "nick", "bob is now known as robert.")
        });
        p.wait_online(&["alice", "carol", "robert"]);
    }
    bob.wait_until(
        "the new name in the header",
        "document.getElementById('conn-text').textContent === 'Connected as robert'",
    );

    carol.send("/quit bye");
    for p in [&alice, &bob] {
        p.wait_message("carol leaving", |m| {
            is_event(m, "leave", "carol left the chat. (bye)")
        });
        p.wait_online(&["alice", "robert"]);
    }
    assert!(
        !alice.messages().iter().any(|m| m.text == "only for bob"),
        "a PM reaches only its receiver"
    );
    assert!(
        !bob.messages().iter().any(|m| m.text == "psst"),
        "a PM reaches only its receiver"
    );
    assert_eq!(
        bob.eval(FITS),
        json!(true),
        "375 px: nothing to scroll sideways"
    );
    bob.screenshot("chat-375");

    // The server goes away; the pages notice and keep trying.
    let tcp_port = server.addr.port();
    let web_port = port_of(&url).to_string();
    drop(server);
    for p in [&alice, &bob] {
        p.wait_until(
            "a failed try to reconnect",
            "document.getElementById('conn').dataset.conn !== 'on' && \
             Number(document.getElementById('conn').dataset.tries) >= 2",
        );
    }

    // Back on the same ports; lines said before the pages are back reach them once.
    let server = Server::start_at(
        tcp_port,
        &["--web-port", &web_port, "--history-db", &db_arg],
    );
    let mut dave = server.login("dave");
    for i in 1..=3 {
        dave.send(&format!("while away {i}"));
    }
    dave.sync("sent");
    for (p, name) in [(&alice, "alice"), (&bob, "robert")] {
        p.wait_message("the lines said while away", |m| {
            m.kind == "chat" && m.text == "while away 3"
        });
        p.wait_until(
            "back under the same name",
            &format!("document.getElementById('conn-text').textContent === 'Connected as {name}'"),
        );
    }
    dave.send("after the restart");
    for p in [&alice, &bob] {
        p.wait_message("a live line after the restart", |m| {
            m.text == "after the restart"
        });
        p.wait_online(&["alice", "dave", "robert"]);
    }
    alice.screenshot("chat-desktop");
    bob.screenshot("chat-375-after-restart");

    // Every public line since alice joined is on her page once, in order.
    let mut audit = server.connect();
    audit.expect_prefix("[SERVER]: ");
    audit.send("/ids on");
    audit.send("auditor");
    audit.read_until_match(|l| l.ends_with("[SERVER]: auditor joined the chat!"));
    audit.send("/history 200");
    audit.read_until_match(|l| l.starts_with("[SERVER]: History ("));
    let kept: Vec<(u64, String)> = audit
        .read_until("[SERVER]: End of history.")
        .iter()
        .filter_map(|l| {
            let (id, rest) = l.strip_prefix('@')?.split_once(' ')?;
            Some((id.parse().ok()?, rest.to_owned()))
        })
        .collect();
    let shown: Vec<(u64, String)> = alice
        .messages()
        .iter()
        .filter_map(|m| Some((m.id?, m.line())))
        .collect();
    let last = shown
        .iter()
        .find(|(_, l)| l == "dave: after the restart")
        .expect("last line")
        .0;
    let first = shown[0].0;
    let want: Vec<(u64, String)> = kept
        .into_iter()
        .filter(|(id, _)| (first..=last).contains(id))
        .collect();
    let got: Vec<(u64, String)> = shown.into_iter().filter(|(id, _)| *id <= last).collect();
    assert_eq!(got, want, "alice's page against the server's history");

    // Closing the tab leaves the room.
    bob.tab.close(true).expect("close bob's tab");
    dave.read_until("[SERVER]: robert left the chat.");
    alice.wait_online(&["alice", "auditor", "dave"]);
}

/// A notice the page follows, with its exact text.
fn is_event(m: &Msg, event: &str, text: &str) -> bool {
    m.kind == "notice" && m.event.as_deref() == Some(event) && m.text == text
}

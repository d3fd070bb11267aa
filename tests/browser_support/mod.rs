//! Real-browser test support: Debian's headless Chromium driven over the
//! DevTools protocol (`headless_chrome`, blocking, no async runtime, built
//! without its browser download), a test-only static server for the
//! embedded page, and the one place that reads the page's URL from the
//! server's log.
//!
//! Every wait has a deadline ([`WAIT`]); a page that never reaches the
//! expected state fails the test with what it showed instead. Screenshots go
//! to [`out_dir`] (`target/browser-test/`).
//!
//! Use with `mod common; mod browser_support;` in a test file.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::{Emulation, Page as Cdp};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use crate::common::Server;

/// How long any wait for the page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Where Debian's `chromium` package puts the browser (`CHROMIUM` overrides).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags this machine needs: no sandbox as root, no GPU, and none of the
/// browser's own network traffic (the machine's closed network refuses it,
/// many connections at a time). headless_chrome adds `--headless`,
/// `--no-sandbox`, `--disable-gpu` and a fresh `--user-data-dir` in a temp
/// dir from the launch options; they are listed here too so the set is in
/// one place.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--lang=en-US",
];

/// Folder for what the browser tests leave behind (screenshots).
pub fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("browser-test");
    std::fs::create_dir_all(&dir).expect("create target/browser-test");
    dir
}

/// A window size.
#[derive(Debug, Clone, Copy)]
pub enum Viewport {
    /// A laptop window, 1280 x 800.
    Desktop,
    /// A phone held upright: 375 x 740 CSS pixels at 2x, touch, mobile.
    Phone,
}

/// A headless Chromium process; it ends when this is dropped.
pub struct Chromium {
    /// The DevTools connection (owns the process).
    browser: Browser,
    /// The HOME it was given (its trusted CAs), removed after it.
    _home: Option<tempfile::TempDir>,
}

/// Where NSS's `certutil` is (Debian's `libnss3-tools`).
pub const CERTUTIL: &str = "/usr/bin/certutil";

impl Chromium {
    /// Starts Debian's Chromium. Fails the test, in one line naming the
    /// package, when it is not installed; never downloads a browser.
    pub fn launch() -> Chromium {
        Self::start(None)
    }

    /// Starts Chromium trusting the CA certificate in the PEM file `ca`, the
    /// way a user trusts a CA on Linux: a fresh HOME whose NSS database
    /// (`~/.pki/nssdb`, where Chromium keeps locally trusted CAs) holds it,
    /// added with NSS's `certutil`. Certificate errors are not ignored
    /// (headless_chrome ignores them unless told), so an HTTPS page loads
    /// only if its certificate checks out against that CA and the host name.
    pub fn launch_trusting(ca: &Path) -> Chromium {
        assert!(
            Path::new(CERTUTIL).exists(),
            "{CERTUTIL} not found: install it with `apt-get install libnss3-tools` (or run scripts/test.sh)"
        );
        let home = tempfile::tempdir().expect("a temporary HOME");
        let db = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&db).expect("create ~/.pki/nssdb");
        let db = format!("sql:{}", db.display());
        let certutil = |args: &[&str]| {
            let out = std::process::Command::new(CERTUTIL)
                .args(args)
                .output()
                .expect("run certutil");
            assert!(
                out.status.success(),
                "certutil {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        certutil(&["-N", "-d", &db, "--empty-password"]);
        let ca = ca.to_str().expect("UTF-8 path");
        certutil(&[
            "-A",
            "-d",
            &db,
            "-n",
            "chatroom test CA",
            "-t",
            "C,,",
            "-i",
            ca,
        ]);
        Self::start(Some(home))
    }

    fn start(home: Option<tempfile::TempDir>) -> Chromium {
        let path = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(CHROMIUM));
        assert!(
            path.exists(),
            "Chromium not found at {}: install it with `apt-get install chromium` (or run scripts/test.sh)",
            path.display()
        );
        let options = LaunchOptions::default_builder()
            .path(Some(path))
            .headless(true)
            .sandbox(false)
            .enable_gpu(false)
            .window_size(Some((1280, 800)))
            .args(FLAGS.iter().map(OsStr::new).collect())
            .idle_browser_timeout(Duration::from_secs(300))
            .ignore_certificate_errors(home.is_none())
            .process_envs(home.as_ref().map(|h| {
                std::iter::once(("HOME".to_owned(), h.path().display().to_string())).collect()
            }))
            .build()
            .expect("launch options");
        let browser = Browser::new(options).expect("start Chromium");
        Chromium {
            browser,
            _home: home,
        }
    }

    /// A new tab of the given size showing `url`, loaded.
    pub fn open(&self, url: &str, viewport: Viewport) -> Page {
        self.try_open(url, viewport)
            .unwrap_or_else(|e| panic!("load {url}: {e}"))
    }

    /// Like [`Chromium::open`], or the browser's reason for not loading
    /// `url` (e.g. `net::ERR_CERT_AUTHORITY_INVALID`).
    pub fn try_open(&self, url: &str, viewport: Viewport) -> Result<Page, String> {
        let tab = self.browser.new_tab().expect("new tab");
        tab.set_default_timeout(WAIT);
        let page = Page { tab };
        page.resize(viewport);
        page.tab
            .navigate_to(url)
            .and_then(|t| t.wait_until_navigated())
            .map_err(|e| e.to_string())?;
        Ok(page)
    }
}

/// One tab.
pub struct Page {
    /// The DevTools handle of the tab.
    pub tab: Arc<Tab>,
}

impl Page {
    /// Emulates the window size (and, for [`Viewport::Phone`], a phone).
    pub fn resize(&self, viewport: Viewport) {
        let (width, height, scale, mobile) = match viewport {
            Viewport::Desktop => (1280, 800, 1.0, false),
            Viewport::Phone => (375, 740, 2.0, true),
        };
        self.tab
            .call_method(Emulation::SetDeviceMetricsOverride {
                width,
                height,
                device_scale_factor: scale,
                mobile,
                scale: None,
                screen_width: None,
                screen_height: None,
                position_x: None,
                position_y: None,
                dont_set_visible_size: None,
                screen_orientation: None,
                viewport: None,
                display_feature: None,
                device_posture: None,
            })
            .expect("set the viewport");
    }

    /// Evaluates a JavaScript expression in the page and returns its value
    /// (through JSON); an exception fails the test with its message.
    pub fn eval(&self, expr: &str) -> Value {
        let js = format!(
            "(() => {{ try {{ return JSON.stringify({{ ok: ({expr}) }}); }} \
             catch (e) {{ return JSON.stringify({{ err: String(e && e.stack || e) }}); }} }})()"
        );
        let got = self
            .tab
            .evaluate(&js, false)
            .unwrap_or_else(|e| panic!("evaluate {expr}: {e}"));
        let text = got
            .value
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no value from {expr}"));
        let mut v: Value = serde_json::from_str(&text).expect("JSON from the page");
        if let Some(err) = v.get("err") {
            panic!("{expr} threw: {err}");
        }
        v.get_mut("ok").map(Value::take).unwrap_or(Value::Null)
    }

    /// Waits until `expr` is truthy in the page; on timeout fails with
    /// `what` and the page's messages and state.
    pub fn wait_until(&self, what: &str, expr: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(expr);
            if truthy(&v) {
                return v;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "page never showed {what} (within {WAIT:?}); it shows: {}",
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's state and messages, for failure messages.
    pub fn describe(&self) -> String {
        let state = self.eval(
            "({ state: document.getElementById('app').dataset.state, \
                conn: document.getElementById('conn-text').textContent, \
                error: document.getElementById('login-error').textContent })",
        );
        let lines: Vec<String> = self.messages().iter().map(Msg::to_string).collect();
        format!("{state}\n  {}", lines.join("\n  "))
    }

    /// Clicks the element `selector` selects.
    pub fn click(&self, selector: &str) {
        self.tab
            .wait_for_element(selector)
            .and_then(|e| e.click().map(|_| ()))
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Focuses `selector`, types `text` as key presses, then Enter.
    pub fn type_line(&self, selector: &str, text: &str) {
        self.eval(&format!(
            "(document.querySelector({sel}).focus(), true)",
            sel = js_string(selector)
        ));
        self.tab
            .type_str(text)
            .and_then(|t| t.press_key("Enter"))
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Types `name` into the name prompt (replacing what is there) and
    /// presses Enter.
    pub fn enter_name(&self, name: &str) {
        self.wait_until(
            "the name prompt",
            "document.getElementById('app').dataset.state === 'prompt'",
        );
        self.eval("(document.getElementById('name').value = '', true)");
        self.type_line("#name", name);
    }

    /// Logs in as `name` through the prompt and waits for the chat.
    pub fn login(&self, name: &str) {
        self.enter_name(name);
        self.wait_until(
            &format!("{name} in the chat"),
            &format!(
                "document.getElementById('app').dataset.state === 'chat' && \
                 document.getElementById('conn-text').textContent === {}",
                js_string(&format!("Connected as {name}"))
            ),
        );
    }

    /// Types `text` into the entry and presses Enter.
    pub fn say(&self, text: &str) {
        self.type_line("#entry", text);
    }

    /// Every message on screen, oldest first.
    pub fn messages(&self) -> Vec<Msg> {
        let v = self.eval(
            "Array.from(document.querySelectorAll('#messages > li')).map(li => ({ \
                kind: li.dataset.kind, \
                event: li.dataset.event || null, \
                id: li.dataset.id || null, \
                who: (li.querySelector('.body .who') || {}).textContent || null, \
                text: (li.querySelector('.text') || {}).textContent || '', \
                own: li.classList.contains('own'), \
                past: li.classList.contains('past') }))",
        );
        serde_json::from_value::<Vec<Value>>(v)
            .expect("a list of messages")
            .iter()
            .map(Msg::from_json)
            .collect()
    }

    /// Waits until a message satisfying `pred` is on screen; returns it.
    pub fn wait_message(&self, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        let start = Instant::now();
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| pred(m)) {
                return m;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "page never showed {what} (within {WAIT:?}); it shows: {}",
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The names in the online list, in the order shown.
    pub fn online(&self) -> Vec<String> {
        let v = self.eval(
            "Array.from(document.querySelectorAll('#people-list .who')).map(b => b.textContent)",
        );
        serde_json::from_value(v).expect("names")
    }

    /// Waits until the online list shows exactly `names`, in this order.
    pub fn wait_online(&self, names: &[&str]) {
        let want = serde_json::to_string(names).expect("JSON");
        self.wait_until(
            &format!("online list {want}"),
            &format!(
                "JSON.stringify(Array.from(document.querySelectorAll('#people-list .who')).map(b => b.textContent)) === {}",
                js_string(&want)
            ),
        );
    }

    /// Saves a PNG of what the tab shows to `target/browser-test/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        // A background tab paints nothing: bring it to the front, then let
        // the last layout and scroll land before the picture.
        self.tab.activate().expect("bring the tab to the front");
        self.tab
            .evaluate(
                "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                true,
            )
            .expect("wait for a frame");
        let png = self
            .tab
            .capture_screenshot(Cdp::CaptureScreenshotFormatOption::Png, None, None, true)
            .expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = out_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

/// One message as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// `chat`, `action`, `pm-from`, `pm-to`, `notice`, `pong`, `other`,
    /// `divider` (history framing) or `status` (the page's own line).
    pub kind: String,
    /// For notices the page follows: `join`, `leave`, `nick`, `who`,
    /// `sorry`.
    pub event: Option<String>,
    /// The public line's id, when it had one.
    pub id: Option<u64>,
    /// The name shown with a chat line, action or private message.
    pub who: Option<String>,
    /// The text, as shown.
    pub text: String,
    /// True for the user's own chat lines and actions.
    pub own: bool,
    /// True for lines replayed from the history.
    pub past: bool,
}

impl Msg {
    fn from_json(v: &Value) -> Msg {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Msg {
            kind: s("kind").unwrap_or_default(),
            event: s("event"),
            id: s("id").and_then(|i| i.parse().ok()),
            who: s("who"),
            text: s("text").unwrap_or_default(),
            own: v.get("own").and_then(Value::as_bool).unwrap_or(false),
            past: v.get("past").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    /// The line as the server sent it (without its id), for comparing with
    /// what a TCP user read.
    pub fn line(&self) -> String {
        let who = self.who.as_deref().unwrap_or("");
        match self.kind.as_str() {
            "chat" => format!("{who}: {}", self.text),
            "action" => format!("* {who} {}", self.text),
            "pm-from" => format!("[PM from {who}]: {}", self.text),
            "pm-to" => format!("[PM to {who}]: {}", self.text),
            "notice" | "divider" => format!("[SERVER]: {}", self.text),
            _ => self.text.clone(),
        }
    }
}

impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.id.map(|i| format!("@{i} ")).unwrap_or_default();
        let own = if self.own { " (own)" } else { "" };
        let past = if self.past { " (past)" } else { "" };
        write!(f, "[{}] {id}{}{own}{past}", self.kind, self.line())
    }
}

/// JavaScript's truthiness of a value the page returned.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `s` as a JavaScript string literal.
pub fn js_string(s: &str) -> String {
    serde_json::to_string(s).expect("JSON string")
}

/// The page's URL in the server's log: the origin (`http://HOST:PORT/`) of
/// the first `http://` or `https://` address logged, e.g. from
/// `web: http://127.0.0.1:41234/`. The one place that knows the log's
/// wording.
pub fn web_url_in(log: &str) -> Option<String> {
    let at = log.find("http://").or_else(|| log.find("https://"))?;
    let (scheme, rest) = log[at..].split_once("://")?;
    let authority: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !"/)\"',;".contains(*c))
        .collect();
    let authority = authority.trim_end_matches('.');
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}/"))
}

/// The port in a URL such as `http://127.0.0.1:41234/`.
pub fn port_of(url: &str) -> u16 {
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// Waits for the server to log its page's URL and returns it.
pub fn wait_web_url(server: &Server) -> String {
    let start = Instant::now();
    loop {
        if let Some(url) = web_url_in(&server.logs()) {
            return url;
        }
        if start.elapsed() > WAIT {
            panic!(
                "chat-server logged no http:// address for its page; its log:\n{}",
                server.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test-only HTTP server on loopback that serves the embedded page files
/// (`chatroom::web::assets::asset`) and 404 for anything else, and records
/// every path asked for. It stands in for nothing of chat-server's: it only
/// lets the browser load the real files until the server serves them itself.
pub struct StaticSite {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request path, in arrival order.
    pub paths: Arc<Mutex<Vec<String>>>,
}

impl StaticSite {
    /// Listens on 127.0.0.1, a free port, in a thread of its own.
    pub fn start() -> StaticSite {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let paths = Arc::new(Mutex::new(Vec::new()));
        let log = paths.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        StaticSite { addr, paths }
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The paths asked for so far.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().expect("paths").clone()
    }
}

/// Answers one request (`Connection: close`).
fn serve(mut stream: TcpStream, log: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(WAIT));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let path = loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => break req.path.unwrap_or("").to_owned(),
            Ok(httparse::Status::Partial) if head.len() < 8192 => continue,
            _ => return,
        }
    };
    log.lock().expect("paths").push(path.clone());
    let response = match chatroom::web::assets::asset(&path) {
        Some(a) => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                a.content_type,
                a.body.len()
            )
            .into_bytes();
            r.extend_from_slice(a.body);
            r
        }
        None => b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\nNot found\n".to_vec(),
    };
    let _ = stream.write_all(&response);
}

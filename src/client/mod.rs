//! The terminal client (PROTOCOL.md section 6): blocking std I/O, two
//! threads, a connection that comes back by itself.
//!
//! - The **main thread** owns the connection: it connects (with the
//!   [`policy::Retry`] delays), turns ids on and resumes after the last
//!   line it saw ([`resume::Resume`]), logs in ([`login::Login`]), prints
//!   every server line except the answers to its own pings and set-up
//!   commands (without ids), and sends keepalive pings
//!   ([`policy::Keepalive`]). Its socket reads carry a timeout set to
//!   the next thing due (a ping, the silence limit, a retry of a held name),
//!   so one blocking thread needs no poller.
//! - The **stdin thread** reads typed lines ([`term::Keyboard`]) and writes
//!   them to the socket through [`Shared`], the one lock both threads use:
//!   the current writer, whether lines may go out now, the lines waiting
//!   until they may, and whether the user has quit.
//!
//! Each thread prints through a [`term::Screen`] of its own. When stdin and
//! stdout are a terminal, the stdin thread reads through a line editor
//! (prompt, history) and both screens print through the editor, above the
//! line being typed, which stays intact; Ctrl-D on an empty line or Ctrl-C
//! leaves. Otherwise lines in and out are plain. [`term`] has the details.
//!
//! Typed lines that cannot go out yet (connecting, logging in, reconnecting)
//! wait in a queue of up to [`QUEUE_MAX`] lines and are sent, in order, once
//! the client is in the chat; so `printf 'hi\n/quit\n' | chat-client --name a`
//! works. After a lost connection each waiting line is announced as a status.
//! A quit while disconnected exits at once (dropping waiting lines, with a
//! note), except before the first login, where the waiting lines go first.
//!
//! Status messages (lost, retrying, back, the name in use, errors) are one
//! line each, prefixed `chat-client: `, on stderr; stdout carries only what
//! the server sent. With the editor, and stderr on a terminal too, status
//! lines are printed above the prompt like server lines, so they do not tear
//! the line being typed either. Log lines (`-v`) still go straight to
//! stderr: redirect it (`2>client.log`) to read them while typing.
//!
//! After a lost connection the lines the room had meanwhile are shown
//! once, in order, between the welcome and the join notice, and one status
//! line says how many were missed (and how many the server no longer kept):
//! see [`resume`]. A typed `/ids` is not sent: the client needs ids on.
//!
//! With `--tls` ([`tls`]) the connection is TLS: the handshake happens on the
//! main thread before anything is written, a certificate that does not check
//! out ends the client (exit 1) instead of a retry, and both threads reach the
//! session through the same lock, which neither holds while it waits for the
//! network.
//!
//! Adding a kind of line the client prints (say, a resume notice) means one
//! more `Screen::line` or `Screen::status` call on the thread that has it;
//! nothing else here needs to know whether an editor is in use.

pub mod input;
pub mod login;
pub mod policy;
pub mod resume;
pub mod term;
pub mod tls;

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::line::{Frame, LineReader};
use input::{classify, Input};
use login::{parse_nick, Login, Step};
use policy::{token_prefix, Keepalive, Retry};
use resume::Resume;
use term::{Keyboard, Screen};
use tls::{Conn, Failure, Trust};

/// How long the client waits for the goodbye after sending `/quit`.
pub const QUIT_WAIT: Duration = Duration::from_secs(2);
/// Typed lines kept while they cannot be sent.
pub const QUEUE_MAX: usize = 100;
/// Longest server line the client reassembles (the server's own limit is
/// far below; anything longer is skipped).
const READ_LIMIT: usize = 1 << 20;

/// What the command line asks for.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Log in as this name without asking (`--name`).
    pub name: Option<String>,
    /// Ping period; 3 silent periods mean a lost connection (`--keepalive`).
    pub keepalive: Duration,
    /// Tries in a row after a failure before giving up (`--retries`).
    pub retries: u32,
    /// How long a reconnect keeps asking for a name the server still holds
    /// before taking a variant (`--name-wait`).
    pub name_wait: Duration,
    /// Connect over TLS, trusting this (`--tls`, `--ca`, `--insecure`).
    pub tls: Option<Trust>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "localhost".into(),
            port: 53000,
            name: None,
            keepalive: Duration::from_secs(20),
            retries: 5,
            name_wait: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The user quit (`/quit`, an alias, or EOF on stdin).
    Quit,
    /// Nobody reads stdout any more: not an error.
    StdoutClosed,
    /// The retries ran out, or TLS refused the server; the reason was printed.
    GaveUp,
}

impl Outcome {
    /// 0 for a quit or a closed stdout, 1 when the client gave up.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Outcome::Quit | Outcome::StdoutClosed => ExitCode::SUCCESS,
            Outcome::GaveUp => ExitCode::FAILURE,
        }
    }
}

/// Parses a positive number of seconds (fractions allowed).
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    parse_seconds_or_zero(s).and_then(|d| {
        if d.is_zero() {
            Err("must be more than 0 seconds".into())
        } else {
            Ok(d)
        }
    })
}

/// Parses a number of seconds that may be 0 (fractions allowed).
pub fn parse_seconds_or_zero(s: &str) -> Result<Duration, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(v).map_err(|_| "must be a number of seconds, 0 or more".into())
}

/// Checks a `--name` against the server's name rules.
pub fn parse_name(s: &str) -> Result<String, String> {
    crate::text::check_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.explain().to_owned())
}

/// Seconds as people read them: `1`, `0.9`, `2.5`.
fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Whether typed lines may go to the server right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// No connection.
    Offline,
    /// Connected, the client is logging in by itself: typed lines wait.
    Busy,
    /// Connected, the user is typing the name: typed lines go out.
    Prompt,
    /// In the chat: typed lines go out.
    Chat,
}

impl Gate {
    fn open(self) -> bool {
        matches!(self, Gate::Prompt | Gate::Chat)
    }
}

/// The state both threads share, behind [`Shared::link`].
#[derive(Debug)]
struct Link {
    /// The current connection (for writing; over TLS also its session).
    writer: Option<Conn>,
    /// Whether typed lines may go out.
    gate: Gate,
    /// Typed lines waiting for the gate to open, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// The user has quit: an ending connection is the end, not a loss.
    quitting: bool,
    /// The client has been in the chat at least once.
    joined_once: bool,
    /// When a line last went out on the current connection.
    last_tx: Option<Instant>,
}

impl Link {
    /// Writes `bytes` (whole lines) to the current connection.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::new(ErrorKind::NotConnected, "not connected"))?;
        w.write_all(bytes)?;
        self.last_tx = Some(Instant::now());
        Ok(())
    }

    /// Writes one typed line and its LF.
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let mut b = Vec::with_capacity(line.len() + 1);
        b.extend_from_slice(line);
        b.push(b'\n');
        self.write(&b)
    }

    /// Opens the gate and sends what waited, in order.
    fn open(&mut self, gate: Gate) -> io::Result<()> {
        self.gate = gate;
        while let Some(line) = self.queue.front() {
            let line = line.clone();
            self.write_line(&line)?;
            self.queue.pop_front();
        }
        Ok(())
    }

    /// A write failed: close the connection so the reader notices at once.
    fn broken(&mut self) {
        if let Some(w) = &self.writer {
            w.shutdown();
        }
        self.gate = Gate::Offline;
    }
}

/// The lock both threads use, and a condition variable for its changes.
#[derive(Debug)]
pub struct Shared {
    /// Connection, gate, queue and quit flag.
    link: Mutex<Link>,
    /// Signalled when the gate opens or the user quits.
    changed: Condvar,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            link: Mutex::new(Link {
                writer: None,
                gate: Gate::Offline,
                queue: VecDeque::new(),
                quitting: false,
                joined_once: false,
                last_tx: None,
            }),
            changed: Condvar::new(),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn quitting(&self) -> bool {
        self.lock().quitting
    }

    /// The stdin thread: reads lines until a quit or the end of input, then
    /// quits; its status lines go to `screen`.
    pub fn type_lines(&self, mut keyboard: Keyboard, mut screen: Screen) {
        let mut buf = Vec::new();
        loop {
            if !keyboard.read(&mut buf) {
                return self.quit(b"/quit", &mut screen);
            }
            match classify(&String::from_utf8_lossy(&buf)) {
                Input::Blank => {}
                Input::Line => self.typed(&buf, &mut screen),
                Input::Ids => screen.status(
                    "/ids not sent: chat-client keeps ids on itself, to resume without loss",
                ),
                Input::Quit => return self.quit(&buf, &mut screen),
            }
        }
    }

    /// Sends a typed line now, or queues it.
    fn typed(&self, line: &[u8], screen: &mut Screen) {
        let mut link = self.lock();
        if link.gate.open() {
            match link.write_line(line) {
                Ok(()) => return,
                Err(e) => {
                    log::debug!("write: {e}");
                    link.broken();
                }
            }
        }
        if link.queue.len() >= QUEUE_MAX {
            screen.status(format_args!(
                "not connected; line dropped ({QUEUE_MAX} lines already wait to be sent)"
            ));
            return;
        }
        link.queue.push_back(line.to_vec());
        if link.joined_once {
            screen
                .status("not connected; the line will be sent once the client is back in the chat");
        }
    }

    /// Sends the quit line (if connected) and makes sure the main thread
    /// ends within [`QUIT_WAIT`] even if the server never answers.
    fn quit(&self, line: &[u8], screen: &mut Screen) {
        let mut link = self.lock();
        if !link.joined_once && !link.queue.is_empty() {
            // Lines given before the first login (a script's input) go first.
            link = self
                .changed
                .wait_while(link, |l| !l.gate.open() && !l.queue.is_empty())
                .unwrap_or_else(|e| e.into_inner());
        }
        if !link.queue.is_empty() {
            let n = link.queue.len();
            screen.status(format_args!(
                "{n} typed line{} not sent",
                if n == 1 { " was" } else { "s were" }
            ));
            link.queue.clear();
        }
        link.quitting = true;
        let mut wake = None;
        if link.gate != Gate::Offline {
            if let Err(e) = link.write_line(line) {
                log::debug!("write /quit: {e}");
            }
            wake = link.writer.as_ref().and_then(|w| w.socket().ok());
        }
        drop(link);
        self.changed.notify_all();
        if let Some(w) = wake {
            thread::sleep(QUIT_WAIT);
            log::debug!("no goodbye within {QUIT_WAIT:?}; closing");
            let _ = w.shutdown(Shutdown::Both);
        }
    }
}

/// How one connection ended.
#[derive(Debug)]
enum End {
    /// The user quit.
    Quit,
    /// stdout is closed.
    StdoutClosed,
    /// TLS refused the server (its certificate, or it does not speak TLS):
    /// trying again would fail the same way.
    Refused(String),
    /// It failed or was lost.
    Failed {
        /// Why, for the status line.
        why: String,
        /// The TCP connection was made.
        connected: bool,
        /// The client was in the chat on it.
        joined: bool,
    },
}

/// The main thread's state across connections.
struct Runner {
    config: Config,
    shared: Arc<Shared>,
    /// The name to log in with: `--name`, then the name the server confirmed.
    name: Option<String>,
    retry: Retry,
    joined_once: bool,
    /// Start of every ping and barrier token.
    prefix: String,
    /// `HOST:PORT` for messages.
    addr: String,
    /// Where server lines and status lines go.
    screen: Screen,
    /// The last id seen, and what a connection shows of ids and history.
    resume: Resume,
    /// The TLS configuration, with `--tls`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Runs the client on the process's stdin, stdout and stderr until the user
/// quits or the retries run out.
pub fn run(config: Config) -> Outcome {
    let shared = Arc::new(Shared::default());
    let typist = shared.clone();
    let term::Terminal {
        keyboard,
        typist: typist_screen,
        mut screen,
    } = term::open();
    if let Err(e) = thread::Builder::new()
        .name("stdin".into())
        .spawn(move || typist.type_lines(keyboard, typist_screen))
    {
        screen.status(format_args!("cannot start the input thread: {e}"));
        return Outcome::GaveUp;
    }
    let tls = match config.tls.as_ref().map(tls::config).transpose() {
        Ok(t) => t,
        Err(e) => {
            screen.leave();
            screen.status(e);
            return Outcome::GaveUp;
        }
    };
    if config.tls == Some(Trust::Insecure) {
        screen.status(
            "--insecure: the server's certificate is NOT checked; \
             whoever is in between can read and change this chat",
        );
    }
    let addr = if config.host.contains(':') {
        format!("[{}]:{}", config.host, config.port)
    } else {
        format!("{}:{}", config.host, config.port)
    };
    let mut runner = Runner {
        name: config.name.clone(),
        retry: Retry::new(config.retries),
        joined_once: false,
        prefix: token_prefix(),
        addr,
        config,
        shared,
        screen,
        resume: Resume::new(),
        tls,
    };
    let outcome = runner.run();
    runner.screen.leave();
    outcome
}

impl Runner {
    fn run(&mut self) -> Outcome {
        loop {
            if self.shared.quitting() {
                return Outcome::Quit;
            }
            let end = match self.connect() {
                Ok(stream) => self.session(stream),
                Err(e) => End::Failed {
                    why: e.to_string(),
                    connected: false,
                    joined: false,
                },
            };
            let (why, connected, joined) = match end {
                End::Quit => return Outcome::Quit,
                End::StdoutClosed => return Outcome::StdoutClosed,
                End::Refused(why) => {
                    self.screen.leave();
                    self.screen.status(format_args!("{}: {why}", self.addr));
                    return Outcome::GaveUp;
                }
                End::Failed {
                    why,
                    connected,
                    joined,
                } => (why, connected, joined),
            };
            if self.shared.quitting() {
                return Outcome::Quit;
            }
            let addr = &self.addr;
            let what = match (connected, joined) {
                (false, _) => format!("cannot connect to {addr}: {why}"),
                (true, false) => format!("the connection to {addr} ended before login: {why}"),
                (true, true) => format!("lost the connection to {addr}: {why}"),
            };
            let max = self.retry.max();
            match self.retry.next_try() {
                Some((n, delay)) => {
                    self.screen.status(format_args!(
                        "{what}; retrying in {} s (try {n} of {max})",
                        secs(delay)
                    ));
                    if self.sleep_unless_quit(delay) {
                        return Outcome::Quit;
                    }
                }
                None => {
                    let retries = if max == 1 { "retry" } else { "retries" };
                    // The last line: printed plainly once the terminal is
                    // given back, not left waiting for the editor's thread.
                    self.screen.leave();
                    self.screen
                        .status(format_args!("{what}; giving up after {max} {retries}"));
                    return Outcome::GaveUp;
                }
            }
        }
    }

    /// Connect and write timeout: three keepalive periods, within 1 to 10 s.
    fn io_timeout(&self) -> Duration {
        (self.config.keepalive * policy::SILENT_PERIODS)
            .clamp(Duration::from_secs(1), Duration::from_secs(10))
    }

    /// Waits `d`; true if the user quit meanwhile.
    fn sleep_unless_quit(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        let mut link = self.shared.lock();
        loop {
            if link.quitting {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            link = match self.shared.changed.wait_timeout(link, until - now) {
                Ok((l, _)) => l,
                Err(e) => e.into_inner().0,
            };
        }
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let mut last = None;
        for a in (self.config.host.as_str(), self.config.port).to_socket_addrs()? {
            log::debug!("connecting to {a}");
            match TcpStream::connect_timeout(&a, self.io_timeout()) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(ErrorKind::NotFound, "no address found")))
    }

    /// The connection both threads use for `stream`: over TLS, after the
    /// handshake.
    fn open(&self, stream: &TcpStream) -> Result<Conn, End> {
        let failed = |e: io::Error| End::Failed {
            why: e.to_string(),
            connected: true,
            joined: false,
        };
        let writer = stream.try_clone().map_err(failed)?;
        let Some(config) = &self.tls else {
            return Ok(Conn::plain(writer));
        };
        let _ = stream.set_read_timeout(Some(self.io_timeout()));
        match tls::handshake(config, &self.config.host, stream) {
            Ok(session) => Ok(Conn::tls(writer, session)),
            Err(Failure::Fatal(why)) => Err(End::Refused(why)),
            Err(Failure::Io(e)) => Err(failed(e)),
        }
    }

    /// One connection, from login to its end.
    fn session(&mut self, stream: TcpStream) -> End {
        let start = Instant::now();
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(self.io_timeout()));
        let mut login = match &self.name {
            // A first login does not wait: a name taken then belongs to
            // someone else. After a loss it may be our own old session's.
            Some(n) if self.joined_once => Login::auto(n, self.config.name_wait, &self.prefix),
            Some(n) => Login::auto(n, Duration::ZERO, &self.prefix),
            None => Login::manual(),
        };
        let writer = match self.open(&stream) {
            Ok(w) => w,
            Err(end) => return end,
        };
        {
            let mut link = self.shared.lock();
            if link.quitting {
                return End::Quit;
            }
            link.writer = Some(writer);
            link.last_tx = None;
            // Ids on, the resume point and their barrier go before anything
            // typed: before the name, whoever sends it.
            let setup = self.resume.start(&self.prefix);
            if let Err(e) = link.write(setup.as_bytes()) {
                log::debug!("write: {e}");
                link.broken();
            } else if login.is_manual() {
                if let Err(e) = link.open(Gate::Prompt) {
                    log::debug!("write: {e}");
                    link.broken();
                }
            } else {
                link.gate = Gate::Busy;
            }
        }
        self.shared.changed.notify_all();
        let end = self.converse(&stream, &mut login, start);
        {
            let mut link = self.shared.lock();
            if matches!(end, End::StdoutClosed) {
                // Nobody reads any more: leave politely.
                let _ = link.write(b"/quit\n");
            }
            link.writer = None;
            link.gate = Gate::Offline;
        }
        let _ = stream.shutdown(Shutdown::Both);
        end
    }

    /// Reads, prints, pings and logs in until the connection ends.
    fn converse(&mut self, stream: &TcpStream, login: &mut Login, start: Instant) -> End {
        let mut ka = Keepalive::new(self.config.keepalive, start, &self.prefix);
        let mut frames = LineReader::new(READ_LIMIT);
        let mut buf = vec![0u8; 16 * 1024];
        let mut plain = Vec::new();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let failed = |why: String, login: &Login| End::Failed {
            why,
            connected: true,
            joined: login.done(),
        };
        loop {
            let now = Instant::now();
            if let Some(t) = self.shared.lock().last_tx {
                ka.sent(t);
            }
            if ka.dead(now) {
                let why = format!("no answer from the server for {} s", secs(ka.silence()));
                return failed(why, login);
            }
            let step = login.tick(now);
            if let Err(why) = self.apply(step) {
                return failed(why, login);
            }
            if ka.due(now) {
                let ping = ka.ping(now);
                log::debug!("keepalive {}", ping.trim_end());
                if let Err(e) = self.shared.lock().write(ping.as_bytes()) {
                    return failed(e.to_string(), login);
                }
            }
            let wake = match login.deadline() {
                Some(d) => d.min(ka.next_check()),
                None => ka.next_check(),
            };
            let wait = wake.saturating_duration_since(Instant::now());
            let _ = stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
            let n = match (&*stream).read(&mut buf) {
                Ok(0) if self.shared.quitting() => return End::Quit,
                Ok(0) => return failed("the server closed the connection".into(), login),
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) if self.shared.quitting() => return End::Quit,
                Err(e) => return failed(e.to_string(), login),
            };
            let now = Instant::now();
            ka.received(now);
            let data = if self.tls.is_none() {
                &buf[..n]
            } else {
                // Over TLS the bytes go through the session, under the lock.
                plain.clear();
                let open = match self.shared.lock().writer.as_mut() {
                    Some(conn) => conn.decrypt(&buf[..n], &mut plain),
                    None => Ok(true),
                };
                match open {
                    Ok(true) => &plain[..],
                    Ok(false) if self.shared.quitting() => return End::Quit,
                    Ok(false) => return failed("the server closed the connection".into(), login),
                    Err(e) => return failed(e.to_string(), login),
                }
            };
            frames.feed(data, |f| {
                if let Frame::Line(l) = f {
                    lines.push(l.to_vec());
                }
                true
            });
            for l in lines.drain(..) {
                let raw = String::from_utf8_lossy(&l);
                if ka.hide(&raw) {
                    continue;
                }
                let seen = self.resume.line(&raw);
                if let Some(note) = seen.note {
                    self.screen.status(note);
                }
                // The line as the user sees it: without its id.
                let text = &raw[seen.skip..];
                let was_done = login.done();
                let step = if seen.to_login {
                    login.line(text, now)
                } else {
                    Step::default()
                };
                if seen.show && !step.hide && self.screen.line(&l[seen.skip..]).is_err() {
                    return End::StdoutClosed;
                }
                if was_done && seen.to_login {
                    self.follow_nick(text);
                }
                if let Err(why) = self.apply(step) {
                    return failed(why, login);
                }
            }
            if self.screen.flush().is_err() {
                return End::StdoutClosed;
            }
        }
    }

    /// Acts on what the login asked for.
    fn apply(&mut self, step: Step) -> Result<(), String> {
        if let Some(note) = step.note {
            self.screen.status(note);
        }
        if let Some(data) = step.send {
            self.shared
                .lock()
                .write(data.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        if let Some(why) = step.fail {
            return Err(why);
        }
        if let Some(name) = step.joined {
            if self.joined_once {
                self.screen
                    .status(format_args!("back in the chat as {name}"));
            } else {
                self.screen.status(format_args!("in the chat as {name}"));
            }
            self.name = Some(name);
            self.joined_once = true;
            if let Some(note) = self.resume.joined() {
                self.screen.status(note);
            }
            self.retry.reset();
            let mut link = self.shared.lock();
            link.joined_once = true;
            let opened = link.open(Gate::Chat);
            drop(link);
            self.shared.changed.notify_all();
            opened.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Keeps the name to reconnect with in step with `/nick`.
    fn follow_nick(&mut self, line: &str) {
        if let Some((old, new)) = parse_nick(line) {
            if self.name.as_deref() == Some(old) {
                log::debug!("now known as {new}");
                self.name = Some(new.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("0.3"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_seconds("20"), Ok(Duration::from_secs(20)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("x").is_err());
        assert_eq!(parse_seconds_or_zero("0"), Ok(Duration::ZERO));
        assert!(parse_seconds_or_zero("nan").is_err());
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse_name("bob_1"), Ok("bob_1".into()));
        assert!(parse_name("a").is_err());
        assert!(parse_name("Admin").is_err());
        assert!(parse_name("a b").is_err());
    }

    #[test]
    fn seconds_print() {
        assert_eq!(secs(Duration::from_secs(1)), "1");
        assert_eq!(secs(Duration::from_millis(900)), "0.9");
        assert_eq!(secs(Duration::from_millis(2500)), "2.5");
        assert_eq!(secs(Duration::from_secs(60)), "60");
    }

    #[test]
    fn the_queue_opens_in_order() {
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let shared = Shared::default();
        let screen = &mut Screen::plain();
        shared.typed(b"one", screen);
        shared.typed(b"two", screen);
        assert_eq!(shared.lock().queue.len(), 2);
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        {
            let mut link = shared.lock();
            link.writer = Some(Conn::plain(c));
            link.open(Gate::Chat).unwrap();
        }
        shared.typed(b"three", screen);
        shared.lock().writer = None;
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(got, "one\ntwo\nthree\n");
    }
}

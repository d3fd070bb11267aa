//! The real `chat-client` binary in a real pseudo-terminal, against a real
//! `chat-server`: what a person at a terminal sees. The pty's output goes
//! through a terminal emulator (`vt100`) and the tests look at the SCREEN:
//! its rows and where the cursor is.
//!
//! Every wait is a read with a deadline ([`WAIT`]): a screen that never
//! reaches the expected state fails the test and prints the screen.
mod common;

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, WAIT};

/// Size of the emulated terminal.
const ROWS: u16 = 24;
const COLS: u16 = 80;

/// The client's prompt as the screen shows it (trailing blanks trimmed).
const PROMPT: &str = ">";

/// Opens a pseudo-terminal of [`ROWS`] x [`COLS`]: (master, slave). Both
/// are close-on-exec from the start, so no process another test starts
/// meanwhile inherits them (which would keep the pty open after our client
/// exits).
fn open_pty() -> (OwnedFd, OwnedFd) {
    // SAFETY: plain pty calls on descriptors we create and own; ptsname_r
    // writes a NUL-terminated path into our buffer.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0, "grantpt");
        assert_eq!(libc::unlockpt(m), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let path = CStr::from_ptr(name.as_ptr());
        let s = libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(s >= 0, "open {path:?}: {}", std::io::Error::last_os_error());
        let slave = OwnedFd::from_raw_fd(s);
        let size = libc::winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(libc::ioctl(m, libc::TIOCSWINSZ, &size), 0, "TIOCSWINSZ");
        (master, slave)
    }
}

/// The terminal modes of the pty (`fd` is either side).
fn modes(fd: &OwnedFd) -> libc::termios {
    // SAFETY: tcgetattr fills the struct we pass.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0, "tcgetattr");
        t
    }
}

/// A `chat-client` in a pty; killed when dropped.
struct Tty {
    child: Child,
    /// For typing.
    keys: File,
    /// The pty's output, in chunks; disconnected once every slave
    /// descriptor is closed (the client exited).
    chunks: Receiver<Vec<u8>>,
    /// The terminal emulator the output goes through.
    term: vt100::Parser,
    /// The slave side, with [`Wiring::TtyKept`].
    slave: Option<OwnedFd>,
    /// The slave's modes before the client started.
    initial: libc::termios,
}

/// How the client is connected besides stdin and stderr (always the pty).
#[derive(PartialEq)]
enum Wiring {
    /// stdout to the pty too.
    Tty,
    /// stdout to the pty too, and the test keeps a slave descriptor open to
    /// read the terminal's modes after the client exited; then the pty never
    /// reports EOF.
    TtyKept,
    /// stdout to a pipe (its lines come on the returned receiver).
    Pipe,
}

impl Tty {
    /// `chat-client ADDR ARGS...` in a pty of its own.
    fn start(addr: SocketAddr, args: &[&str]) -> Tty {
        Self::start_with(addr, args, Wiring::Tty).0
    }

    /// `chat-client ADDR ARGS...` with the pty as its controlling terminal
    /// and stdin, wired as `wiring` says.
    fn start_with(
        addr: SocketAddr,
        args: &[&str],
        wiring: Wiring,
    ) -> (Tty, Option<Receiver<String>>) {
        let (master, slave) = open_pty();
        let initial = modes(&slave);
        let io = || Stdio::from(slave.try_clone().expect("dup slave"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-client"));
        cmd.arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .args(args)
            .env("TERM", "xterm")
            .stdin(io())
            .stderr(io());
        if wiring == Wiring::Pipe {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(io());
        }
        // SAFETY: only async-signal-safe calls between fork and exec: a new
        // session whose controlling terminal is the pty (stdin), as a
        // terminal emulator sets up a shell.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn chat-client");
        drop(cmd);
        let out = child.stdout.take().map(|o| {
            let (tx, rx) = channel();
            thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(o).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        let keys = File::from(master.try_clone().expect("dup master"));
        let mut reader = File::from(master);
        let (tx, chunks) = channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once no slave descriptor is left.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let tty = Tty {
            child,
            keys,
            chunks,
            term: vt100::Parser::new(nonzero(ROWS), nonzero(COLS), 0),
            slave: (wiring == Wiring::TtyKept).then_some(slave),
            initial,
        };
        (tty, out)
    }

    /// Types `keys` (bytes as a terminal sends them).
    fn press(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).expect("type");
        self.keys.flush().expect("type");
    }

    /// The rows of the screen, trailing blanks trimmed.
    fn rows(&self) -> Vec<String> {
        let screen = self.term.screen();
        screen
            .rows(0, COLS)
            .map(|r| r.trim_end().to_owned())
            .collect()
    }

    /// The cursor's row and column.
    fn cursor(&self) -> (usize, u16) {
        let (row, col) = self.term.screen().cursor_position();
        (usize::from(row), col)
    }

    /// The screen as text, for failure messages.
    fn dump(&self) -> String {
        let (row, col) = self.cursor();
        let mut s = format!("cursor at row {row}, column {col}; screen:\n");
        for (i, r) in self.rows().iter().enumerate() {
            s.push_str(&format!("{i:2}|{r}\n"));
        }
        s
    }

    /// Feeds the pty's output to the emulator until `pred` holds for the
    /// screen; panics with the screen after [`WAIT`].
    fn until(&mut self, what: &str, pred: impl Fn(&Tty) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !pred(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(bytes) => self.term.process(&bytes),
                Err(e) => panic!("screen never showed {what} ({e:?}); {}", self.dump()),
            }
        }
    }

    /// Waits until the prompt row shows exactly `line` with the cursor at
    /// its end.
    fn until_prompt(&mut self, line: &str) {
        let want = format!("{PROMPT} {line}").trim_end().to_owned();
        let col = u16::try_from(PROMPT.len() + 1 + line.len()).unwrap();
        self.until(&format!("the prompt {want:?}"), |t| {
            let (row, c) = t.cursor();
            t.rows()[row] == want && c == col
        });
    }

    /// The row showing exactly `text`, above the cursor's row.
    fn row_above(&self, text: &str) -> Option<usize> {
        let (cursor, _) = self.cursor();
        self.rows()[..cursor].iter().position(|r| r == text)
    }

    /// Waits until the status line `chat-client: in the chat as NAME` is on
    /// a row above an empty prompt: the editor is reading keys.
    fn until_in_chat(&mut self, name: &str) {
        let status = format!("chat-client: in the chat as {name}");
        self.until(&format!("{status:?} above the prompt"), |t| {
            let (row, _) = t.cursor();
            t.row_above(&status).is_some() && t.rows()[row] == PROMPT
        });
    }

    /// Waits for EOF on the pty (the client closed its terminal), then for
    /// the process; its exit code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        if self.slave.is_none() {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.chunks.recv_timeout(left) {
                    Ok(bytes) => self.term.process(&bytes),
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        panic!("the client did not exit; {}", self.dump())
                    }
                }
            }
        }
        // A process exit is no read: poll it, within the deadline.
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().expect("exited, not killed");
            }
            assert!(
                Instant::now() < deadline,
                "the client did not exit; {}",
                self.dump()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_line_arriving_while_typing_goes_above_the_half_typed_line() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let mut alice = Tty::start(server.addr, &["--name", "alice"]);
    bob.expect("[SERVER]: alice joined the chat!");
    alice.until_in_chat("alice");

    alice.press("half typed");
    alice.until_prompt("half typed");
    bob.send("msg 1");
    bob.expect("bob: msg 1");
    // The whole picture at once: the line on a row of its own above, the
    // half-typed line still on the prompt, the cursor at its end.
    let want = "> half typed";
    alice.until("bob's line above the half-typed line", |t| {
        let (row, col) = t.cursor();
        t.row_above("bob: msg 1").is_some() && t.rows()[row] == want && col == want.len() as u16
    });

    alice.press(" and done\r");
    bob.expect("alice: half typed and done");
    alice.until("the echo of the line sent, above an empty prompt", |t| {
        let (row, _) = t.cursor();
        t.row_above("alice: half typed and done").is_some() && t.rows()[row] == PROMPT
    });
}

#[test]
fn up_arrow_recalls_the_previous_line() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let mut alice = Tty::start(server.addr, &["--name", "alice"]);
    bob.expect("[SERVER]: alice joined the chat!");
    alice.until_in_chat("alice");
    alice.press("first line\r");
    bob.expect("alice: first line");
    alice.press("second line\r");
    bob.expect("alice: second line");
    alice.until_prompt("");

    alice.press("\x1b[A");
    alice.until_prompt("second line");
    alice.press("\x1b[A");
    alice.until_prompt("first line");
    alice.press("\r");
    bob.expect("alice: first line");
}

#[test]
fn ctrl_d_on_an_empty_line_leaves_with_status_0() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let mut alice = Tty::start(server.addr, &["--name", "alice"]);
    bob.expect("[SERVER]: alice joined the chat!");
    alice.until_in_chat("alice");
    // On a non-empty line Ctrl-D deletes (nothing here, at the end): the
    // client stays.
    alice.press("x\x04");
    alice.until_prompt("x");
    alice.press("\x7f");
    alice.until_prompt("");
    alice.press("\x04");
    bob.expect("[SERVER]: alice left the chat.");
    assert_eq!(alice.wait_exit(), 0);
    assert!(
        alice
            .rows()
            .iter()
            .any(|r| r == "[SERVER]: Goodbye, alice!"),
        "{}",
        alice.dump()
    );
}

#[test]
fn ctrl_c_leaves_too_without_sending_the_typed_line() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let mut alice = Tty::start(server.addr, &["--name", "alice"]);
    bob.expect("[SERVER]: alice joined the chat!");
    alice.until_in_chat("alice");
    alice.press("not this");
    alice.until_prompt("not this");
    alice.press("\x03");
    // The very next line bob gets: "not this" never went out.
    bob.expect("[SERVER]: alice left the chat.");
    assert_eq!(alice.wait_exit(), 0);
}

#[test]
fn giving_up_while_editing_gives_the_terminal_back() {
    let server = Server::start(&[]);
    let args = ["--name", "alice", "--retries", "0"];
    let (mut alice, _) = Tty::start_with(server.addr, &args, Wiring::TtyKept);
    alice.until_in_chat("alice");
    alice.press("half");
    alice.until_prompt("half");
    // The editor reads keys one by one, without echo by the terminal.
    let raw = modes(alice.slave.as_ref().unwrap());
    assert_eq!(raw.c_lflag & (libc::ICANON | libc::ECHO), 0);

    drop(server);
    alice.until("the client giving up below the prompt", |t| {
        let rows = t.rows();
        let prompt = rows.iter().rposition(|r| r == "> half");
        let last = rows
            .iter()
            .position(|r| r.contains("giving up after 0 retries"));
        prompt.is_some() && last > prompt
    });
    assert_eq!(alice.wait_exit(), 1);
    let after = modes(alice.slave.as_ref().unwrap());
    assert_eq!(after.c_lflag, alice.initial.c_lflag, "local modes restored");
    assert_eq!(after.c_iflag, alice.initial.c_iflag, "input modes restored");
}

#[test]
fn a_terminal_on_stdin_with_stdout_piped_stays_plain() {
    let server = Server::start(&[]);
    let mut bob = server.login("bob");
    let (mut alice, out) = Tty::start_with(server.addr, &["--name", "alice"], Wiring::Pipe);
    let out = out.expect("stdout pipe");
    bob.expect("[SERVER]: alice joined the chat!");
    bob.send("msg 1");
    bob.expect("bob: msg 1");
    let deadline = Instant::now() + WAIT;
    let mut lines = Vec::new();
    while !lines.iter().any(|l| l == "bob: msg 1") {
        let left = deadline.saturating_duration_since(Instant::now());
        match out.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => panic!("no line from bob on stdout ({e:?}); got {lines:?}"),
        }
    }
    assert!(
        lines.iter().all(|l| !l.contains('\x1b')),
        "no escape sequences on a piped stdout: {lines:?}"
    );
    assert_eq!(lines[0], "[SERVER]: Welcome! Please enter your name:");
    // Typed lines are read as plain lines (the terminal echoes them).
    alice.press("hello\r");
    bob.expect("alice: hello");
    alice.until("the terminal's own echo", |t| {
        t.rows().iter().any(|r| r == "hello")
    });
    alice.press("\x04");
    bob.expect("[SERVER]: alice left the chat.");
    assert_eq!(alice.wait_exit(), 0);
}

fn nonzero(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).expect("a size of 1 or more")
}

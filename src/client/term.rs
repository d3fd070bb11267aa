//! The client's terminal (PROTOCOL.md section 6): where typed lines come
//! from ([`Keyboard`]) and where the room's lines and the client's status
//! lines go ([`Screen`]).
//!
//! When stdin and stdout are both a terminal ([`wants_editor`]), typing goes
//! through a line editor (`rustyline`): the line being typed sits after a
//! prompt (`> `), and a line that arrives meanwhile is printed *above* it by
//! the editor's external printer, which then redraws the prompt and the
//! half-typed line. The editor keeps the last [`HISTORY`] lines sent, in
//! memory only (up-arrow, down-arrow). Keys are the usual emacs ones; Enter
//! sends; Ctrl-D on an empty line and Ctrl-C (whatever is typed, which is not
//! sent) both mean "leave": the client sends `/quit` and exits 0. Ctrl-C
//! leaves rather than clearing the line because that is what it does to any
//! other terminal program, this client without a terminal included; here it
//! leaves politely.
//!
//! Otherwise (a pipe or a file on either side, or a terminal the editor does
//! not support, such as `TERM=dumb`) everything is plain lines, byte for byte
//! as without an editor: no prompt, no escape sequences.
//!
//! Each thread has a [`Screen`] of its own. With the editor, a line printed
//! while the editor reads is handed to the editor's thread and waits until it
//! is drawn; no lock of ours is held meanwhile, so the stdin thread (which
//! only prints between two reads, when the printer writes directly) never
//! waits for the socket thread's output. Server lines go out in one print
//! per batch read from the socket, so a burst redraws the prompt once.

use std::fmt::Display;
use std::io::{self, BufRead, IsTerminal, Write};
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::history::MemHistory;
use rustyline::{Config, Editor, ExternalPrinter};

/// The prompt in front of the line being typed.
pub const PROMPT: &str = "> ";
/// Typed lines the editor remembers for up-arrow.
pub const HISTORY: usize = 100;
/// Prefix of every status line.
const STATUS: &str = "chat-client: ";

/// True when the client should use the line editor: only if both stdin and
/// stdout are a terminal, so that whatever reads a pipe or a file gets plain
/// lines.
pub fn wants_editor(stdin_tty: bool, stdout_tty: bool) -> bool {
    stdin_tty && stdout_tty
}

/// The terminal as the two threads use it.
pub struct Terminal {
    /// For the stdin thread: reads typed lines.
    pub keyboard: Keyboard,
    /// For the stdin thread's own status lines.
    pub typist: Screen,
    /// For the socket (main) thread: server lines and status lines.
    pub screen: Screen,
}

/// Opens this process's terminal: the line editor if [`wants_editor`] and
/// the editor supports the terminal, else plain lines.
pub fn open() -> Terminal {
    if wants_editor(io::stdin().is_terminal(), io::stdout().is_terminal()) {
        match open_editor() {
            Ok(t) => return t,
            Err(e) => log::debug!("no line editor ({e}); plain lines"),
        }
    }
    Terminal {
        keyboard: Keyboard::Plain(io::stdin()),
        typist: Screen::plain(),
        screen: Screen::plain(),
    }
}

/// The line editor and its two printers.
fn open_editor() -> rustyline::Result<Terminal> {
    let saved = Modes::get()?;
    let config = Config::builder()
        .max_history_size(HISTORY)?
        .auto_add_history(true)
        // A pasted block of lines is sent line by line, as if typed, and no
        // paste mode is left switched on should the client end mid-line.
        .bracketed_paste(false)
        .build();
    let history = MemHistory::with_config(&config);
    let mut editor = Editor::with_history(config, history)?;
    // Fails for a terminal the editor cannot drive (TERM=dumb).
    let main = editor.create_external_printer()?;
    let typist = editor.create_external_printer()?;
    let reading = Arc::new(AtomicBool::new(false));
    let status_here = io::stderr().is_terminal();
    let printer = |p, leave| {
        Screen::editor(Printer {
            out: Box::new(p),
            page: Page::default(),
            status_here,
            leave,
        })
    };
    Ok(Terminal {
        keyboard: Keyboard::Editor {
            editor: Box::new(editor),
            reading: reading.clone(),
        },
        typist: printer(typist, None),
        screen: printer(main, Some(Leave { saved, reading })),
    })
}

/// Where typed lines come from.
pub enum Keyboard {
    /// Plain lines from stdin.
    Plain(io::Stdin),
    /// The line editor.
    Editor {
        /// Boxed: the editor is large, the plain variant small.
        editor: Box<Editor<(), MemHistory>>,
        /// True while the editor reads (the terminal is in its raw mode), so
        /// the main thread knows to give the terminal back if it ends first.
        reading: Arc<AtomicBool>,
    },
}

impl Keyboard {
    /// Reads the next typed line into `buf`, without its line end. False at
    /// the end of input: EOF or Ctrl-D on an empty line, Ctrl-C in the
    /// editor, or a read error.
    pub fn read(&mut self, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        match self {
            Keyboard::Plain(stdin) => match stdin.lock().read_until(b'\n', buf) {
                Ok(0) => false,
                Ok(_) => {
                    trim_line_end(buf);
                    true
                }
                Err(e) => {
                    log::debug!("stdin: {e}");
                    false
                }
            },
            Keyboard::Editor { editor, reading } => {
                reading.store(true, Ordering::SeqCst);
                let got = editor.readline(PROMPT);
                reading.store(false, Ordering::SeqCst);
                match got {
                    Ok(line) => {
                        buf.extend_from_slice(line.as_bytes());
                        true
                    }
                    Err(e) => {
                        log::debug!("editor: {e}");
                        false
                    }
                }
            }
        }
    }
}

/// Drops the LF and a CR before it.
fn trim_line_end(buf: &mut Vec<u8>) {
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
}

/// Where one thread's output goes.
pub struct Screen {
    /// `None`: plain stdout and stderr.
    printer: Option<Box<Printer>>,
}

/// Output through the line editor.
struct Printer {
    /// The editor's external printer.
    out: Box<dyn ExternalPrinter + Send>,
    /// Server lines waiting for [`Screen::flush`].
    page: Page,
    /// Status lines go through the editor too (stderr is a terminal, the
    /// same one as a rule); else they go to stderr as plain lines.
    status_here: bool,
    /// The main thread's means to give the terminal back ([`Screen::leave`]).
    leave: Option<Leave>,
}

/// What the main thread needs to give the terminal back if the client ends
/// while the editor reads (the retries ran out).
struct Leave {
    /// The terminal's modes before the editor changed them.
    saved: Modes,
    /// See [`Keyboard::Editor::reading`].
    reading: Arc<AtomicBool>,
}

impl Screen {
    /// Plain lines: server lines to stdout, status lines to stderr.
    pub fn plain() -> Self {
        Screen { printer: None }
    }

    fn editor(printer: Printer) -> Self {
        Screen {
            printer: Some(Box::new(printer)),
        }
    }

    /// One server line (without its LF). Plain lines go to stdout at once;
    /// through the editor they wait for [`Screen::flush`]. An error means
    /// nobody reads stdout any more.
    pub fn line(&mut self, line: &[u8]) -> io::Result<()> {
        match &mut self.printer {
            None => {
                let mut out = io::stdout().lock();
                out.write_all(line)?;
                out.write_all(b"\n")
            }
            Some(p) => {
                p.page.line(line);
                Ok(())
            }
        }
    }

    /// Shows the lines given so far.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.printer {
            None => io::stdout().flush(),
            Some(p) => p.flush(),
        }
    }

    /// One status line, `chat-client: MSG`, after the lines given so far.
    /// Write errors are ignored: there is nowhere left to report them.
    pub fn status(&mut self, msg: impl Display) {
        if let Some(p) = self.printer.as_mut().filter(|p| p.status_here) {
            p.page.status(msg);
            let _ = p.flush();
            return;
        }
        let _ = writeln!(io::stderr().lock(), "{STATUS}{msg}");
    }

    /// The client is ending: shows what waits, gives the terminal back if
    /// the editor is still reading (and moves below its prompt), and prints
    /// plainly from now on, so a last status line is not lost with the
    /// process while it waits for the editor's thread.
    ///
    /// A race is left: had the stdin thread just sent a line and were it
    /// about to read the next, the editor could switch the terminal to raw
    /// mode again in the microseconds before the process exits.
    pub fn leave(&mut self) {
        let Some(mut p) = self.printer.take() else {
            return;
        };
        let _ = p.flush();
        if let Some(leave) = p.leave.filter(|l| l.reading.load(Ordering::SeqCst)) {
            if let Err(e) = leave.saved.set() {
                log::debug!("restoring the terminal: {e}");
            }
            let mut out = io::stdout().lock();
            let _ = out.write_all(b"\n").and_then(|()| out.flush());
        }
    }
}

impl Printer {
    fn flush(&mut self) -> io::Result<()> {
        match self.page.take() {
            Some(text) => self.out.print(text).map_err(io::Error::other),
            None => Ok(()),
        }
    }
}

/// Lines waiting to be printed together: one print, one redraw of the
/// prompt per batch rather than per line.
#[derive(Debug, Default)]
struct Page {
    /// Whole lines, each with its LF (the editor wants text).
    text: String,
}

impl Page {
    /// Adds a server line; invalid UTF-8 shows as U+FFFD.
    fn line(&mut self, line: &[u8]) {
        self.text.push_str(&String::from_utf8_lossy(line));
        self.text.push('\n');
    }

    /// Adds a status line.
    fn status(&mut self, msg: impl Display) {
        use std::fmt::Write as _;
        let _ = writeln!(self.text, "{STATUS}{msg}");
    }

    /// The text to print, if any; the page is empty afterwards.
    fn take(&mut self) -> Option<String> {
        (!self.text.is_empty()).then(|| mem::take(&mut self.text))
    }
}

/// The terminal modes of stdin (termios), as saved before the editor ran.
struct Modes(libc::termios);

impl Modes {
    fn get() -> io::Result<Self> {
        // SAFETY: tcgetattr fills the struct we pass; an all-zero termios is
        // a valid value to start from.
        unsafe {
            let mut t: libc::termios = mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Modes(t))
        }
    }

    fn set(&self) -> io::Result<()> {
        // SAFETY: tcsetattr reads the struct we pass.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, &self.0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_needs_a_terminal_on_both_sides() {
        assert!(wants_editor(true, true));
        assert!(!wants_editor(true, false));
        assert!(!wants_editor(false, true));
        assert!(!wants_editor(false, false));
    }

    #[test]
    fn line_ends_are_trimmed_once() {
        for (raw, want) in [
            (&b"hi\n"[..], &b"hi"[..]),
            (b"hi\r\n", b"hi"),
            (b"hi", b"hi"),
            (b"hi\r", b"hi"),
            (b"hi\n\n", b"hi\n"),
            (b"\n", b""),
        ] {
            let mut buf = raw.to_vec();
            trim_line_end(&mut buf);
            assert_eq!(buf, want, "{raw:?}");
        }
    }

    #[test]
    fn a_page_keeps_lines_and_statuses_in_order() {
        let mut page = Page::default();
        assert_eq!(page.take(), None);
        page.line(b"[SERVER]: al joined the chat!");
        page.status("in the chat as al");
        page.line(b"bad \xff byte");
        assert_eq!(
            page.take().as_deref(),
            Some(
                "[SERVER]: al joined the chat!\n\
                 chat-client: in the chat as al\n\
                 bad \u{fffd} byte\n"
            )
        );
        assert_eq!(page.take(), None, "empty after a take");
    }
}

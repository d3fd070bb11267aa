//! `--history-db` (PROTOCOL.md section 8) through the real binary and real
//! SQLite files in temporary directories: ids and lines survive a restart
//! and a `kill -9`, a file that cannot be used stops the server at start
//! with one line, and a write that fails later (a file-size limit set on
//! the running server) costs no user a line and no line the file.
mod common;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Server, WAIT};
use support::wait_log;
use tempfile::TempDir;

/// Splits `@ID rest` into the id and the rest.
fn split_id(line: &str) -> (Option<u64>, &str) {
    if let Some(rest) = line.strip_prefix('@') {
        if let Some((digits, text)) = rest.split_once(' ') {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return (digits.parse().ok(), text);
            }
        }
    }
    (None, line)
}

/// The id of a line that must have one.
fn id_of(line: &str) -> u64 {
    split_id(line)
        .0
        .unwrap_or_else(|| panic!("no id on {line:?}"))
}

fn db_in(dir: &TempDir) -> PathBuf {
    dir.path().join("history.db")
}

/// A server on `db` (other flags in `more`).
fn server_on(db: &Path, more: &[&str]) -> Server {
    let mut args = vec!["--history-db", db.to_str().expect("a UTF-8 temp path")];
    args.extend_from_slice(more);
    Server::start(&args)
}

/// Logs `name` in with ids on after `since` (if any); returns the client,
/// the lines of the history block (with their ids) and the join notice.
fn resume(server: &Server, name: &str, since: Option<u64>) -> (Client, Vec<String>, String) {
    let mut c = server.connect();
    c.expect_prefix("[SERVER]: ");
    c.send("/ids on");
    c.expect_prefix("[SERVER]: ");
    if let Some(s) = since {
        c.send(&format!("/since {s}"));
        c.expect_prefix("[SERVER]: ");
    }
    c.send(name);
    c.expect_prefix("[SERVER]: Welcome to the chat, ");
    let join = format!("[SERVER]: {name} joined the chat!");
    let mut block = Vec::new();
    loop {
        let l = c.line();
        if split_id(&l).1 == join {
            let block = match block.first().map(String::as_str) {
                Some(h) if h.starts_with("[SERVER]: History (") => {
                    assert_eq!(block.last().unwrap(), "[SERVER]: End of history.");
                    block[1..block.len() - 1].to_vec()
                }
                Some(_) => panic!("notices before the block: {block:?}"),
                None => Vec::new(),
            };
            return (c, block, l);
        }
        block.push(l);
    }
}

/// Stops the server with SIGTERM (a clean close of the database).
fn stop(mut server: Server) {
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(WAIT), Some(0), "{}", server.logs());
}

/// Kills the server with SIGKILL: no chance to write anything more.
fn kill_9(mut server: Server) {
    server.signal(libc::SIGKILL);
    let _ = server.child.wait();
}

#[test]
fn a_restart_continues_the_ids_and_replays_the_lines() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let server = server_on(&db, &[]);
    let (mut a, block, join) = resume(&server, "alice", None);
    assert!(block.is_empty());
    assert_eq!(id_of(&join), 1);
    let mut said = vec![join];
    for i in 0..5 {
        a.send(&format!("before {i}"));
        said.push(a.line());
    }
    a.send("/me leaves");
    said.push(a.line());
    stop(server);

    // The same file: the lines and their ids are back, and ids go on.
    let server = server_on(&db, &[]);
    assert!(
        server
            .logs()
            .contains("history: 7 line(s) loaded, last id 7"),
        "{}",
        server.logs()
    );
    let (mut b, block, join) = resume(&server, "bob", None);
    assert_eq!(block, said, "the same lines with the same ids");
    assert_eq!(id_of(&join), 8);
    b.send("after");
    b.expect("@9 bob: after");
    // /since across the restart: a user who saw up to 4 gets 5 to 9.
    let (_c, block, _) = resume(&server, "carol", Some(4));
    let ids: Vec<u64> = block.iter().map(|l| id_of(l)).collect();
    assert_eq!(ids, [5, 6, 7, 8, 9]);
    assert_eq!(block[..3], said[4..]);
    // A third start after a kill -9 (no clean close at all) also goes on.
    kill_9(server);
    let server = server_on(&db, &["--history", "3"]);
    let (_d, block, join) = resume(&server, "dave", None);
    let ids: Vec<u64> = block.iter().map(|l| id_of(l)).collect();
    assert_eq!(ids, [8, 9, 10], "the last --history lines");
    assert_eq!(id_of(&join), 11);
}

/// `--history 0` with a file keeps no line but still continues the ids.
#[test]
fn with_history_0_the_file_still_continues_the_ids() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let server = server_on(&db, &["--history", "0"]);
    let (mut a, _, join) = resume(&server, "alice", None);
    assert_eq!(id_of(&join), 1);
    a.send("one");
    a.expect("@2 alice: one");
    kill_9(server);
    let server = server_on(&db, &["--history", "0"]);
    let (_b, block, join) = resume(&server, "bob", Some(2));
    assert!(block.is_empty(), "{block:?}");
    assert_eq!(id_of(&join), 3, "the ids go on after 2");
    // The same file with history on: nothing was kept, ids still go on.
    drop(server);
    let server = server_on(&db, &[]);
    let (_c, block, join) = resume(&server, "carol", None);
    assert!(block.is_empty(), "{block:?}");
    assert_eq!(id_of(&join), 4);
}

/// A line any user received is in the file, even if the server is killed
/// right after: a burst from three senders, a reader that counts what it
/// got, `kill -9` in the middle of the burst; after a restart every line
/// the reader got is replayed with the same id, and the next id is above
/// all of them.
#[test]
fn kill_9_in_a_burst_loses_no_line_anyone_received() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let server = server_on(&db, &["--rate", "0", "--history", "5000"]);
    let (mut reader, _, _) = resume(&server, "reader", None);
    let mut senders: Vec<Client> = (0..3).map(|i| server.login(&format!("s{i}"))).collect();
    reader.read_until_match(|l| split_id(l).1 == "[SERVER]: s2 joined the chat!");
    // Each sender writes its lines in a few large writes, from a thread of
    // its own, and never reads: the burst is as fast as the server takes it.
    let writers: Vec<std::thread::JoinHandle<()>> = senders
        .iter_mut()
        .enumerate()
        .map(|(i, c)| {
            let mut s = c.stream.try_clone().unwrap();
            std::thread::spawn(move || {
                for chunk in 0..20 {
                    let text: String = (0..50)
                        .map(|n| format!("s{i} line {}\n", chunk * 50 + n))
                        .collect();
                    if s.write_all(text.as_bytes()).is_err() {
                        return; // the server is gone
                    }
                }
            })
        })
        .collect();
    // Kill the server once the reader has seen part of the burst.
    let mut got = Vec::new();
    while got.len() < 300 {
        got.push(reader.line());
    }
    let pid = server.pid() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    // Whatever was already in the reader's socket buffer was received too.
    while let Some(l) = reader.try_line() {
        got.push(l);
    }
    drop(server);
    for w in writers {
        w.join().unwrap();
    }
    let got: Vec<(u64, String)> = got
        .iter()
        .map(|l| (id_of(l), split_id(l).1.to_owned()))
        .collect();
    assert!(got.len() >= 300, "{}", got.len());
    let max = got.iter().map(|(id, _)| *id).max().unwrap();

    let server = server_on(&db, &["--history", "5000"]);
    let (_c, block, join) = resume(&server, "checker", Some(0));
    let kept: std::collections::HashMap<u64, String> = block
        .iter()
        .map(|l| (id_of(l), split_id(l).1.to_owned()))
        .collect();
    for (id, text) in &got {
        assert_eq!(
            kept.get(id),
            Some(text),
            "line {id} was received before the kill but is not in the file"
        );
    }
    assert!(id_of(&join) > max, "{join} after {max}");
}

/// A run of `chat-server` that must refuse to start.
struct Refused {
    code: Option<i32>,
    stderr: String,
    port: u16,
}

/// A port free right now (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `chat-server --history-db PATH` on free ports and waits for it to
/// end (it must, within [`WAIT`]).
fn run_refused(db: &Path) -> Refused {
    let port = free_port();
    let web = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--web-port", &web.to_string(), "--history-db"])
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat-server");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chat-server with --history-db {} did not exit",
                db.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Refused {
        code: status.code(),
        stderr,
        port,
    }
}

/// The server refused `db` as the rules say: exit status 1, one line on
/// stderr naming the file and containing `why`, nothing listening.
fn assert_refused(db: &Path, why: &str) {
    let r = run_refused(db);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(r.code, Some(1), "{}: {:?}", db.display(), r.stderr);
    assert_eq!(lines.len(), 1, "one line: {:?}", r.stderr);
    let name = db.display().to_string();
    assert!(
        lines[0].starts_with("chat-server: history database ") && lines[0].contains(&name),
        "names the file: {:?}",
        lines[0]
    );
    assert!(lines[0].contains(why), "says {why:?}: {:?}", lines[0]);
    let addr = SocketAddr::from(([127, 0, 0, 1], r.port));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "something listens on the chat port"
    );
}

/// A database file the server wrote and closed cleanly (no `-wal` left).
fn written_db(dir: &TempDir) -> PathBuf {
    let db = db_in(dir);
    let server = server_on(&db, &["--rate", "0"]);
    let mut a = server.login("alice");
    for i in 0..200 {
        a.send(&format!(
            "a line long enough to fill pages: {i} {}",
            "x".repeat(100)
        ));
    }
    a.read_until_match(|l| l.starts_with("alice: a line long enough to fill pages: 199 "));
    stop(server);
    assert!(!dir.path().join("history.db-wal").exists());
    db
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    std::fs::write(&db, "these are my notes, not a database\n".repeat(300)).unwrap();
    assert_refused(&db, "not an SQLite database");
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "these are my notes, not a database\n".repeat(300),
        "left alone"
    );
}

#[test]
fn a_damaged_database_is_refused() {
    let dir = TempDir::new().unwrap();
    let db = written_db(&dir);
    // Overwrite the second page (a table's page) with junk.
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() >= 3 * 4096, "{}", bytes.len());
    for b in &mut bytes[4096 + 8..2 * 4096] {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    assert_refused(&db, "damaged");
}

#[test]
fn another_programs_database_is_refused() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    assert_refused(&db, "another program");
    assert_eq!(std::fs::read(&db).unwrap(), before, "left alone");
}

#[test]
fn a_directory_or_a_missing_directory_is_refused() {
    let dir = TempDir::new().unwrap();
    assert_refused(dir.path(), "is a directory");
    let missing = dir.path().join("no such dir").join("history.db");
    assert_refused(&missing, "does not exist");
    assert!(!dir.path().join("no such dir").exists());
}

#[test]
fn a_file_another_server_holds_is_refused_and_the_first_goes_on() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let first = server_on(&db, &[]);
    let mut a = first.login("alice");
    assert_refused(&db, "in use by another process");
    a.send("still here");
    a.expect("alice: still here");
    stop(first);
    // Once the first is gone the file is free again, with alice's lines.
    let server = server_on(&db, &[]);
    let (_b, block, _) = resume(&server, "bob", None);
    assert_eq!(
        block,
        [
            "@1 [SERVER]: alice joined the chat!",
            "@2 alice: still here"
        ]
    );
}

/// Sets the soft `RLIMIT_FSIZE` of process `pid` (its hard limit stays).
fn set_file_size_limit(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit(2) reading the limit of our own child into `old`.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit get: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit(2) on our own child (same uid), with a valid value.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &new, &mut old) };
    assert_eq!(rc, 0, "prlimit set: {}", std::io::Error::last_os_error());
}

/// `GET /metrics` on the web port; the value of `name`.
fn metric(web: SocketAddr, name: &str) -> u64 {
    let mut s = TcpStream::connect(web).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .trim()
        .parse()
        .unwrap()
}

/// A write that fails on the running server (its file-size limit lowered
/// to the `-wal` file's size, as a full disk would): users keep chatting,
/// the log says so once, `/metrics` counts it, and once the limit is lifted
/// the lines said meanwhile reach the file.
#[test]
fn a_failing_write_costs_no_line() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let server = server_on(&db, &["--rate", "0"]);
    let web = server.web_addr.expect("web port");
    let (mut a, _, _) = resume(&server, "alice", None);
    let mut b = server.login("bob");
    a.expect("@2 [SERVER]: bob joined the chat!");
    let mut seen = Vec::new();
    for i in 0..5 {
        a.send(&format!("before {i}"));
        seen.push(a.line());
        b.line();
    }
    assert_eq!(metric(web, "chat_history_write_errors_total"), 0);
    let wal = dir.path().join("history.db-wal");
    let size = std::fs::metadata(&wal).expect("a -wal file").len();
    set_file_size_limit(server.pid(), size);
    // Users keep chatting, over many turns and at least two sweeps (a
    // sweep retries the write).
    let t = Instant::now();
    let mut i = 0;
    while i < 20 || t.elapsed() < Duration::from_millis(2500) {
        let (from, name) = if i % 2 == 0 {
            (&mut a, "alice")
        } else {
            (&mut b, "bob")
        };
        from.send(&format!("during {i}"));
        let got = a.line();
        assert_eq!(split_id(&got).1, format!("{name}: during {i}"));
        seen.push(got);
        b.expect(&format!("{name}: during {i}"));
        std::thread::sleep(Duration::from_millis(50));
        i += 1;
    }
    wait_log(&server, "write failed", WAIT);
    let logs = server.logs();
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("write failed"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "once, not per line or per sweep: {errors:#?}"
    );
    assert!(errors[0].contains("ERROR"), "loudly: {}", errors[0]);
    assert!(errors[0].contains(db.to_str().unwrap()), "{}", errors[0]);
    assert!(metric(web, "chat_history_write_errors_total") > 0);
    // The disk has room again: the next sweep writes what waited.
    set_file_size_limit(server.pid(), u64::MAX);
    wait_log(&server, "writing again", WAIT);
    a.send("after");
    seen.push(a.line());
    b.expect("alice: after");
    kill_9(server);

    let server = server_on(&db, &[]);
    let (_c, block, _) = resume(&server, "carol", Some(2));
    assert_eq!(block, seen, "every line, with its id, is in the file");
}

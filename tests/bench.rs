//! `chat-bench` runs small loads against a real server and reports what was
//! lost; here it must lose nothing. Correctness only: no speed is asserted.

use std::process::Command;

fn bench(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(args)
        .args(["--server", env!("CARGO_BIN_EXE_chat-server"), "--json"])
        .output()
        .expect("run chat-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.success(),
        format!("{stdout}\n--- stderr:\n{stderr}"),
    )
}

/// Pulls `"key":value` out of the one-line JSON report.
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn fanout_delivers_every_line_to_every_client() {
    let (ok, out) = bench(&[
        "fanout", "-n", "12", "-s", "3", "-r", "150", "-d", "1", "--warmup", "0.2",
    ]);
    assert!(ok, "chat-bench fanout failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "12", "{out}");
    assert_eq!(
        field(&out, "joins"),
        "78",
        "12 * 13 / 2 join notices: {out}"
    );
    // 1.2 s x 150 lines/s = 180 lines, each to all 12 clients.
    assert_eq!(field(&out, "lines"), "180", "{out}");
    assert_eq!(field(&out, "expected"), "2160", "{out}");
    assert_eq!(field(&out, "received"), "2160", "{out}");
    assert_eq!(field(&out, "lost"), "0", "{out}");
    assert_eq!(field(&out, "reordered"), "0", "{out}");
    assert_eq!(field(&out, "dropped"), "0", "{out}");
}

#[test]
fn connect_logs_everyone_in_and_one_line_reaches_all() {
    let (ok, out) = bench(&["connect", "-n", "60", "--lines", "2", "--settle", "0.2"]);
    assert!(ok, "chat-bench connect failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "60", "{out}");
    assert_eq!(
        field(&out, "joins"),
        "1830",
        "60 * 61 / 2 join notices: {out}"
    );
    assert_eq!(field(&out, "line_lost"), "0", "{out}");
    assert_eq!(field(&out, "ok"), "true", "{out}");
}

#[test]
fn floor_reaches_every_client_through_the_bare_broadcaster() {
    let (ok, out) = bench(&["floor", "-n", "40", "--lines", "2"]);
    assert!(ok, "chat-bench floor failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "40", "{out}");
    assert_eq!(field(&out, "line_lost"), "0", "{out}");
}

//! Issue 2: the `chat-server` command line (`--help`, `--version`, flags).
use std::process::Command;

fn chat_server(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(args)
        .output()
        .expect("run chat-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The help of one flag: its line and the lines of its description (clap
/// puts descriptions on lines of their own when they are long).
fn flag_help(help: &str, flag: &str) -> String {
    let lines: Vec<&str> = help.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with('-') && l.contains(flag))
        .unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
    let mut text = lines[at].to_owned();
    for l in &lines[at + 1..] {
        if l.trim_start().starts_with('-') || l.trim().is_empty() {
            break;
        }
        text.push(' ');
        text.push_str(l.trim());
    }
    text
}

/// `chat-server --help` lists every flag with its default.
#[test]
fn help_lists_every_flag_with_its_default() {
    let (ok, out, err) = chat_server(&["--help"]);
    assert!(ok, "{err}");
    for (flag, default) in [
        ("--host", Some("0.0.0.0")),
        ("--port", Some("53000")),
        ("--idle-timeout", Some("120")),
        ("--login-timeout", Some("30")),
        ("--max-line", Some("4096")),
        ("--max-clients", Some("10000")),
        ("--max-pending", Some("262144")),
        ("--rate", Some("20")),
        ("--max-per-ip", Some("20")),
        ("--per-ip-exempt", Some("127.0.0.0/8,::1")),
        ("--announce-limit", Some("1000")),
        ("--verbose", None),
        ("--quiet", None),
        ("--log-level", None),
        ("--version", None),
    ] {
        let line = flag_help(&out, flag);
        if let Some(d) = default {
            assert!(
                line.contains(&format!("[default: {d}]")),
                "{flag} without its default {d}: {line:?}"
            );
        }
    }
    assert!(out.contains("-v,") && out.contains("-q,"), "{out}");
}

/// `chat-server --version` prints the version and exits 0.
#[test]
fn version_prints_the_version() {
    let (ok, out, err) = chat_server(&["--version"]);
    assert!(ok, "{err}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out:?}");
}

/// Bad flag values are refused with one line on stderr and status 1, before
/// anything is bound.
#[test]
fn bad_flag_values_are_refused() {
    for args in [
        &["--idle-timeout", "0"][..],
        &["--login-timeout", "-1"],
        &["--max-line", "0"],
        &["--port", "70000"],
        &["--rate", "fast"],
        &["--no-such-flag"],
        &["--per-ip-exempt", "10.0.0.0/33"],
        &["--max-per-ip", "-1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(args)
            .output()
            .expect("run chat-server");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.starts_with("chat-server: "), "{args:?}: {err}");
    }
}

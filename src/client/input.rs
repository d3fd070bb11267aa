//! What a typed line means to the client itself.

/// A line read from stdin, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Nothing but white space: not sent.
    Blank,
    /// `/quit [REASON]`, `!quit` or `{exit}` (any case): sent as typed, then
    /// the client waits for the goodbye and exits.
    Quit,
    /// `/ids ...` (any case): not sent. The client keeps ids on by itself,
    /// to resume after a lost connection without losing or repeating a
    /// line (and strips them before printing); `/ids off` would break that.
    Ids,
    /// Anything else: sent as typed.
    Line,
}

/// Classifies one line (without its LF) the way the server will read it.
pub fn classify(line: &str) -> Input {
    let t = line.trim();
    if t.is_empty() {
        return Input::Blank;
    }
    if t.eq_ignore_ascii_case("!quit") || t.eq_ignore_ascii_case("{exit}") {
        return Input::Quit;
    }
    if let Some(cmd) = t.strip_prefix('/') {
        let word = cmd.trim_start().split(char::is_whitespace).next();
        let word = word.unwrap_or("");
        if word.eq_ignore_ascii_case("quit") {
            return Input::Quit;
        }
        if word.eq_ignore_ascii_case("ids") {
            return Input::Ids;
        }
    }
    Input::Line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_words() {
        for q in [
            "/quit",
            " /QUIT ",
            "/quit bye all",
            "/quit\tbye",
            "!quit",
            "!Quit",
            "{exit}",
            "{EXIT}\r",
            "/ quit",
        ] {
            assert_eq!(classify(q), Input::Quit, "{q:?}");
        }
        for l in [
            "//quit",
            "/quitting",
            "quit",
            "hello /quit",
            "!quit now",
            "{exit} x",
        ] {
            assert_eq!(classify(l), Input::Line, "{l:?}");
        }
        assert_eq!(classify(" \t "), Input::Blank);
        for ids in ["/ids off", "/IDS on", " /ids", "/ ids off"] {
            assert_eq!(classify(ids), Input::Ids, "{ids:?}");
        }
        for l in ["//ids off", "/idsx", "ids off"] {
            assert_eq!(classify(l), Input::Line, "{l:?}");
        }
        assert_eq!(classify(""), Input::Blank);
    }
}

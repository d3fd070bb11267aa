//! What a typed line means to the client itself.

/// A line read from stdin, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Nothing but white space: not sent.
    Blank,
    /// `/quit [REASON]`, `!quit` or `{exit}` (any case): sent as typed, then
    /// the client waits for the goodbye and exits.
    Quit,
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
        assert_eq!(classify(""), Input::Blank);
    }
}

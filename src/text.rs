//! Text rules: decoding, trimming, control characters and names
//! (PROTOCOL.md sections 1 and 3.2).

use std::borrow::Cow;

/// Shortest name, in characters.
pub const NAME_MIN: usize = 2;
/// Longest name, in characters.
pub const NAME_MAX: usize = 32;
/// Names nobody may take, compared without regard to case.
pub const RESERVED: [&str; 2] = ["server", "admin"];

/// Decodes a line: invalid UTF-8 becomes U+FFFD, no error.
pub fn decode(line: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(line)
}

/// True for the characters removed from text another user sees: Unicode
/// category Cc, except TAB.
fn is_banned(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Trims white space, removes control characters (TAB excepted) and trims
/// again, so no user can drive another user's terminal. Borrows when there is
/// nothing to remove.
pub fn clean(text: &str) -> Cow<'_, str> {
    let t = text.trim();
    if !t.contains(is_banned) {
        return Cow::Borrowed(t);
    }
    let kept: String = t.chars().filter(|&c| !is_banned(c)).collect();
    let trimmed = kept.trim();
    if trimmed.len() == kept.len() {
        Cow::Owned(kept)
    } else {
        Cow::Owned(trimmed.to_owned())
    }
}

/// The key under which a name is unique: the name without regard to case.
/// Upper-casing first folds the letters whose case forms differ in length
/// or have two lower-case forms (`ß`/`SS`, `ς`/`σ`/`Σ`, `ﬁ`/`FI`), which
/// plain lower-casing would keep apart.
pub fn fold(name: &str) -> String {
    name.to_uppercase().to_lowercase()
}

/// Why a name was refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum BadName {
    /// Fewer than [`NAME_MIN`] or more than [`NAME_MAX`] characters.
    Length,
    /// A character other than a letter, digit, `_`, `-` or `.`.
    Character,
    /// `server` or `admin`, in any case.
    Reserved,
}

impl BadName {
    /// The reason as users read it.
    pub fn explain(self) -> &'static str {
        match self {
            BadName::Length => "a name must be 2 to 32 characters long",
            BadName::Character => {
                "a name may contain only letters, digits, '_', '-' and '.' (no spaces)"
            }
            BadName::Reserved => "that name is reserved",
        }
    }
}

/// Checks the name rules that do not depend on who is online.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let n = name.chars().count();
    if !(NAME_MIN..=NAME_MAX).contains(&n) {
        return Err(BadName::Length);
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(BadName::Character);
    }
    if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) || RESERVED.contains(&&*fold(name)) {
        return Err(BadName::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_trims_and_strips_controls() {
        assert_eq!(clean("  hi  "), "hi");
        assert_eq!(clean("a\x1b[31mb\x07\x00\x7f"), "a[31mb");
        assert_eq!(clean("\x07 x \x1b"), "x");
        assert_eq!(clean("a\tb"), "a\tb");
        assert_eq!(clean("\u{85}x\u{9f}"), "x");
        assert_eq!(clean("\x1b\x07"), "");
    }

    #[test]
    fn decode_replaces_invalid() {
        assert_eq!(decode(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn fold_ignores_case_fully() {
        assert_eq!(fold("straße"), fold("STRASSE"));
        assert_eq!(fold("Strasse"), fold("STRAßE"));
        assert_eq!(fold("ὈΔΥΣΣΕΎΣ"), fold("ὀδυσσεύς"));
        assert_eq!(fold("Émile"), fold("éMILE"));
        assert_ne!(fold("alice"), fold("alicf"));
    }

    #[test]
    fn names() {
        assert_eq!(check_name("al"), Ok(()));
        assert_eq!(check_name("a"), Err(BadName::Length));
        assert_eq!(check_name(&"x".repeat(32)), Ok(()));
        assert_eq!(check_name(&"x".repeat(33)), Err(BadName::Length));
        assert_eq!(check_name("José_x-1.2"), Ok(()));
        assert_eq!(check_name("日本語"), Ok(()));
        assert_eq!(check_name("a b"), Err(BadName::Character));
        for bad in ["a:b", "[ab", "ab]", "a*b", "a/b", "a\u{7}b"] {
            assert_eq!(check_name(bad), Err(BadName::Character), "{bad}");
        }
        assert_eq!(check_name("SeRvEr"), Err(BadName::Reserved));
        assert_eq!(check_name("ADMIN"), Err(BadName::Reserved));
        assert_eq!(check_name("admins"), Ok(()));
    }
}

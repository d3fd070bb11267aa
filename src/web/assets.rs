//! The page's files, compiled into the binary (PROTOCOL.md section 9: the
//! page loads nothing from anywhere else).
//!
//! [`asset`] is the whole interface [`super::http`] uses: a request path in,
//! a content type and the bytes out. For now the table holds only a
//! placeholder at `/`; the page (HTML, CSS, JavaScript under `web/`, embedded
//! with `include_bytes!`) replaces it, one row per file.

/// One file the server serves as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// Its bytes, embedded in the binary.
    pub body: &'static [u8],
}

/// Stands in for the page until the page's files exist.
const PLACEHOLDER: &[u8] =
    b"<!doctype html>\n<meta charset=\"utf-8\">\n<title>chat</title>\n<p>The chat page is not built yet.</p>\n";

/// Every asset by the exact request path it answers (no query string).
const ASSETS: &[(&str, Asset)] = &[(
    "/",
    Asset {
        content_type: "text/html; charset=utf-8",
        body: PLACEHOLDER,
    },
)];

/// The asset served at `path`, if any.
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|&(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_html_and_unknown_is_none() {
        let page = asset("/").expect("the page is at /");
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert!(std::str::from_utf8(page.body).is_ok());
        assert_eq!(asset("/nope"), None);
        assert_eq!(asset(""), None);
    }
}

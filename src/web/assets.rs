//! The chat page's files, compiled into the binary (PROTOCOL.md section 9:
//! everything the page needs is in the server; it loads nothing from
//! anywhere else).
//!
//! The files live in `web/` at the repository's root as plain HTML, CSS and
//! JavaScript with no build step; `include_bytes!` puts them in the binary
//! as they are, so editing a file and rebuilding is all it takes. The page
//! names its files with relative paths (`app.js`, `style.css`, `icon.svg`),
//! so they resolve next to the page wherever it is served.

/// One file of the page, ready to send as an HTTP response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` header value; text types say `charset=utf-8` so
    /// the browser never guesses.
    pub content_type: &'static str,
    /// The file's bytes, exactly as in `web/`.
    pub body: &'static [u8],
}

/// The page itself, served at `/`.
const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../web/index.html"),
};

/// Request path -> file. `/` is the page; every other path is a file the
/// page names.
const FILES: &[(&str, Asset)] = &[
    ("/", INDEX),
    ("/index.html", INDEX),
    (
        "/app.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body: include_bytes!("../../web/app.js"),
        },
    ),
    (
        "/style.css",
        Asset {
            content_type: "text/css; charset=utf-8",
            body: include_bytes!("../../web/style.css"),
        },
    ),
    (
        "/icon.svg",
        Asset {
            content_type: "image/svg+xml",
            body: include_bytes!("../../web/icon.svg"),
        },
    ),
];

/// The file for a request path as the browser sent it (`/` is the page);
/// a query (`?v=2`) is ignored. `None` for anything else, which the HTTP
/// side answers with 404.
pub fn asset(path: &str) -> Option<Asset> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, asset)| *asset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: Asset) -> &'static str {
        std::str::from_utf8(a.body).expect("page files are UTF-8")
    }

    #[test]
    fn root_is_the_page() {
        let page = asset("/").expect("/");
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert!(text(page).starts_with("<!doctype html>"));
        assert_eq!(asset("/index.html"), Some(page));
        assert_eq!(asset("/?from=link"), Some(page));
    }

    #[test]
    fn every_file_the_page_names_is_served_with_its_type() {
        let page = text(asset("/").unwrap());
        for (file, kind) in [
            ("app.js", "text/javascript; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("icon.svg", "image/svg+xml"),
        ] {
            assert!(page.contains(&format!("\"{file}\"")), "page names {file}");
            let a = asset(&format!("/{file}")).unwrap_or_else(|| panic!("/{file}"));
            assert_eq!(a.content_type, kind);
            assert!(!a.body.is_empty());
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for (name, a) in FILES {
            // The SVG's xmlns is a name, not something loaded.
            let t = text(*a).replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            for far in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!t.contains(far), "{name} mentions {far}");
            }
        }
    }

    #[test]
    fn anything_else_is_not_found() {
        for path in [
            "",
            "/ws",
            "/healthz",
            "/app.js/",
            "/APP.JS",
            "/web/app.js",
            "/../Cargo.toml",
            "/index.htm",
            "app.js",
        ] {
            assert_eq!(asset(path), None, "{path:?}");
        }
    }
}

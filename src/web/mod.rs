//! The web side of the server (PROTOCOL.md section 9): what `GET` serves.
//!
//! - [`assets`]: the chat page's files (`web/` in the repository), compiled
//!   into the binary, looked up by request path.

pub mod assets;

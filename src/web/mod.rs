//! The web side (PROTOCOL.md section 9) as plain code with no I/O.
//!
//! After the HTTP upgrade a web connection is a chat connection like TCP:
//! its bytes go through [`ws::Decoder`], whose text chunks feed the same
//! [`crate::line::LineReader`] as TCP (an end of message acts as an LF),
//! and the room's lines go out through [`ws::encode_text`].
//!
//! - [`ws`]: the WebSocket frame codec, server side.

pub mod ws;

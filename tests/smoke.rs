//! The shortest session: two users join, one talks, both hear it.
mod common;
use common::Server;

#[test]
fn two_users_chat() {
    let server = Server::start(&[]);
    let mut a = server.login("alice");
    let mut b = server.login("bob");
    a.expect("[SERVER]: bob joined the chat!");
    b.send("hello");
    a.expect("bob: hello");
    b.expect("bob: hello");
}

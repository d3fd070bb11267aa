//! `chat-server`: the chat room's server (see `chatroom::server`).

fn main() -> std::process::ExitCode {
    chatroom::server::cli::main()
}

//! `chat-bench`: load and latency measurements of a real `chat-server`,
//! from many clients in one thread over loopback. See `BENCHMARKS.md`.

use std::process::ExitCode;

use chat_bench::cli::{self, Cli};
use clap::Parser;

fn main() -> ExitCode {
    cli::main(Cli::parse())
}

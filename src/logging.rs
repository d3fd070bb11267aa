//! Logging set-up shared by the binaries: `log` + `simple_logger`, to stderr,
//! so a client's chat output on stdout stays clean.

use log::LevelFilter;

/// The log flags both binaries take (`#[command(flatten)]` them in).
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log more (repeat for more detail).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log less (repeat for less).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Log level (off, error, warn, info, debug, trace); overrides -v/-q.
    /// Default: info for chat-server, warn for chat-client.
    #[arg(long)]
    pub log_level: Option<LevelFilter>,
}

impl LogArgs {
    /// Installs the logger at the level these flags pick around `default`.
    pub fn init(&self, default: LevelFilter) {
        init(level(self.log_level, default, self.verbose, self.quiet));
    }
}

/// Picks the level from `--log-level` if given, else from the count of `-v`
/// and `-q` flags around `default`.
pub fn level(
    explicit: Option<LevelFilter>,
    default: LevelFilter,
    verbose: u8,
    quiet: u8,
) -> LevelFilter {
    if let Some(l) = explicit {
        return l;
    }
    const ORDER: [LevelFilter; 6] = [
        LevelFilter::Off,
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ];
    let base = ORDER.iter().position(|&l| l == default).unwrap_or(3) as i32;
    let i = (base + i32::from(verbose) - i32::from(quiet)).clamp(0, 5) as usize;
    ORDER[i]
}

/// Ends a binary whose command line clap refused: `--help` and `--version`
/// print as usual (exit 0); a bad flag prints one line,
/// `NAME: error: ...`, and exits 1.
pub fn flag_error(name: &str, e: clap::Error) -> std::process::ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return std::process::ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("bad command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("{name}: {first} (see {name} --help)");
    std::process::ExitCode::FAILURE
}

/// Installs the logger at `level`. Safe to call once per process.
pub fn init(level: LevelFilter) {
    let _ = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_utc_timestamps()
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level(None, LevelFilter::Info, 0, 0), LevelFilter::Info);
        assert_eq!(level(None, LevelFilter::Info, 1, 0), LevelFilter::Debug);
        assert_eq!(level(None, LevelFilter::Info, 0, 2), LevelFilter::Error);
        assert_eq!(level(None, LevelFilter::Info, 0, 9), LevelFilter::Off);
        assert_eq!(
            level(Some(LevelFilter::Trace), LevelFilter::Info, 0, 3),
            LevelFilter::Trace
        );
    }
}

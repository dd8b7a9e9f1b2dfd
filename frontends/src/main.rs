//! The `mailvault` command: the server and the operator's tools over one store.
#![forbid(unsafe_code)]

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let arguments = cli::Arguments::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAILVAULT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or a journal gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli::run(arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(cli::ExitWith(code)) = error.downcast_ref::<cli::ExitWith>() {
                return ExitCode::from(*code);
            }
            eprintln!("mailvault: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: many errors (the engine's among them) already
/// end with their cause's message, which `{:#}` would print a second time.
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if text.ends_with(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("shard 1: {source}")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let error = anyhow::Error::new(Outer { source: std::io::Error::other("segment 1 is corrupt at offset 4312") })
            .context("opening store /srv/mail");
        assert_eq!(describe(&error), "opening store /srv/mail: shard 1: segment 1 is corrupt at offset 4312");
        let plain = anyhow::Error::new(std::io::Error::other("disk full")).context("writing");
        assert_eq!(describe(&plain), "writing: disk full");
        // Only a repeat at the end is one: the same words elsewhere are kept.
        let elsewhere = anyhow::Error::new(std::io::Error::other("EIO")).context("reading EIO-report.txt");
        assert_eq!(describe(&elsewhere), "reading EIO-report.txt: EIO");
    }
}

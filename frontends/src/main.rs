//! The `mailvault` command: the server and the operator's tools over one store.
#![forbid(unsafe_code)]

mod cli;

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
        .init();
    match cli::run(arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(cli::ExitWith(code)) = error.downcast_ref::<cli::ExitWith>() {
                return ExitCode::from(*code);
            }
            eprintln!("mailvault: {error:#}");
            ExitCode::FAILURE
        }
    }
}

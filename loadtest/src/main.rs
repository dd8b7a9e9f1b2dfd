//! `mailvault-loadtest`: deliver over LMTP, read back over POP3 and IMAP, verify, report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use mailvault_loadtest::accounts::Accounts;
use mailvault_loadtest::corpus::Corpus;
use mailvault_loadtest::endpoint::{Endpoint, Security};
use mailvault_loadtest::plan::Plan;
use mailvault_loadtest::report::{self, Report};
use mailvault_loadtest::retrieve::Protocol;
use mailvault_loadtest::run::{self, Steps};
use mailvault_loadtest::sizes::SIZE_MAX_BYTES;
use mailvault_loadtest::tls::{TlsSettings, Trust};

/// Load generator for LMTP/POP3/IMAP servers: delivers N deterministic messages with C
/// connections to M users, reads them all back over POP3 and IMAP, checks each byte for byte,
/// and reports msg/s, MB/s, latency percentiles, errors and server CPU time.
#[derive(Debug, Parser)]
#[command(name = "mailvault-loadtest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deliver, then retrieve over POP3 and IMAP and verify.
    Run(RunArguments),
    /// Only deliver (prints the tag a later `retrieve --tag` needs).
    Deliver(RunArguments),
    /// Only retrieve and verify what an earlier `deliver` with the same settings and --tag sent.
    Retrieve(RunArguments),
    /// Ratios of two JSON reports (FIRST / SECOND), phase by phase.
    Compare { first: PathBuf, second: PathBuf },
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // independent command-line switches
struct RunArguments {
    /// Messages to deliver.
    #[arg(short = 'n', long, default_value_t = 1000)]
    messages: u64,
    /// Concurrent connections (threads) per phase; retrieval uses at most one per user.
    #[arg(short = 'c', long, default_value_t = 8)]
    connections: usize,
    /// Accounts; message i goes to account i mod M.
    #[arg(short = 'u', long, default_value_t = 10)]
    users: u32,
    /// Account names: {i} is the 1-based number padded to 4 digits, {number} unpadded.
    #[arg(long, default_value = "user{i}@example.org")]
    user_pattern: String,
    /// Passwords: {i}, {number} as for users, {user} the account name.
    #[arg(long, env = "LOADTEST_PASSWORD_PATTERN", default_value = "password-{i}")]
    password_pattern: String,
    /// Seed of the corpus: the same seed gives the same messages.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tells this run's messages from others in the same mailboxes (letters, digits, '-');
    /// default: random for `run` and `deliver`, required for `retrieve`.
    #[arg(long)]
    tag: Option<String>,
    /// Cap on message size in bytes (the mix goes up to 1 MiB).
    #[arg(long, default_value_t = SIZE_MAX_BYTES)]
    size_max: usize,
    /// LMTP endpoint: starttls://, tls:// or plain://HOST:PORT.
    #[arg(long, default_value = "starttls://127.0.0.1:2424")]
    lmtp: Endpoint,
    /// POP3 endpoint.
    #[arg(long, default_value = "starttls://127.0.0.1:1110")]
    pop3: Endpoint,
    /// IMAP endpoint.
    #[arg(long, default_value = "starttls://127.0.0.1:1143")]
    imap: Endpoint,
    /// Protocols to read back with, in order.
    #[arg(long, value_delimiter = ',', default_value = "pop3,imap")]
    retrieve: Vec<Protocol>,
    /// CA or self-signed server certificate to trust (PEM); repeatable.
    #[arg(long = "ca-file")]
    ca_files: Vec<PathBuf>,
    /// Trust any server certificate (test servers with throwaway certificates only).
    #[arg(long, conflicts_with = "ca_files")]
    insecure: bool,
    /// The name the certificate must carry (and SNI).
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Server process whose CPU time (with its descendants') is reported; repeatable.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Envelope sender.
    #[arg(long, default_value = "loadtest@loadtest.example")]
    sender: String,
    /// Socket read/write timeout in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Name of the server in the report.
    #[arg(long, default_value = "server")]
    label: String,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mailvault-loadtest: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let (arguments, steps, tag_required) = match cli.command {
        Command::Compare { first, second } => {
            print!("{}", report::compare(&read_report(&first)?, &read_report(&second)?));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Run(arguments) => {
            let retrieve = arguments.retrieve.clone();
            (arguments, Steps { deliver: true, retrieve }, false)
        }
        Command::Deliver(arguments) => (arguments, Steps { deliver: true, retrieve: Vec::new() }, false),
        Command::Retrieve(arguments) => {
            let retrieve = arguments.retrieve.clone();
            (arguments, Steps { deliver: false, retrieve }, true)
        }
    };
    let plan = plan(&arguments, &steps, tag_required)?;
    eprintln!(
        "tag {} (retrieve later with --tag {} --seed {})",
        plan.corpus.tag(),
        plan.corpus.tag(),
        plan.corpus.seed()
    );
    let report = run::execute(&plan, &steps, &arguments.label);
    print!("{}", report.table());
    if let Some(path) = &arguments.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if report.errors_total == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn plan(arguments: &RunArguments, steps: &Steps, tag_required: bool) -> anyhow::Result<Plan> {
    anyhow::ensure!(arguments.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(arguments.users > 0, "--users must be at least 1");
    let tag = match &arguments.tag {
        Some(tag) => tag.clone(),
        None if tag_required => anyhow::bail!("retrieve needs the --tag the delivery printed"),
        None => random_tag(),
    };
    anyhow::ensure!(
        !tag.is_empty() && tag.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-'),
        "--tag takes letters, digits and '-'"
    );
    let mut used = Vec::new();
    if steps.deliver {
        used.push(&arguments.lmtp);
    }
    for protocol in &steps.retrieve {
        used.push(match protocol {
            Protocol::Pop3 => &arguments.pop3,
            Protocol::Imap | Protocol::ImapBatch => &arguments.imap,
        });
    }
    let tls = if used.iter().all(|endpoint| endpoint.security == Security::Plain) {
        None
    } else {
        let trust = if arguments.insecure {
            Trust::Insecure
        } else if arguments.ca_files.is_empty() {
            anyhow::bail!("TLS needs --ca-file FILE (the server's CA or self-signed certificate) or --insecure");
        } else {
            Trust::Files(arguments.ca_files.clone())
        };
        Some(TlsSettings::new(&trust, &arguments.server_name)?)
    };
    Ok(Plan {
        corpus: Corpus::new(arguments.seed, &tag, arguments.size_max),
        accounts: Accounts::new(&arguments.user_pattern, &arguments.password_pattern, arguments.users),
        messages: arguments.messages,
        connections: arguments.connections,
        lmtp: arguments.lmtp.clone(),
        pop3: arguments.pop3.clone(),
        imap: arguments.imap.clone(),
        tls,
        timeout: Duration::from_secs(arguments.timeout.max(1)),
        sender: arguments.sender.clone(),
        client_name: "loadtest.localhost".to_owned(),
        server_pids: arguments.server_pids.clone(),
        progress: !arguments.quiet,
    })
}

/// 16 hex digits from the clock and the process id: distinct per run, fixed length (so the
/// corpus sizes do not depend on it).
fn random_tag() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    let mut rng = mailvault_loadtest::rng::SplitMix64::new(mixed, 0);
    format!("{:016x}", rng.next_u64())
}

fn read_report(path: &PathBuf) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

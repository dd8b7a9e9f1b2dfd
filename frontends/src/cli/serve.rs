//! `init` and `serve`.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use mailvault_engine::{StoreMetadata, init_store};
use mailvault_frontends::net::tls::CertificateSource;
use mailvault_frontends::net::{Ports, RunningServer, ServerConfig};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::Context;

fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Where and how `serve` listens. Every option also reads an environment variable.
#[derive(Debug, Args)]
pub(crate) struct ServeArguments {
    /// Engine shards, one per core by default (fixed when the store is created).
    #[arg(long)]
    shards: Option<usize>,
    /// The address every listener binds (loopback unless you mean to expose the server).
    #[arg(long, env = "MAILVAULT_LISTEN", default_value = "127.0.0.1")]
    listen: IpAddr,
    /// LMTP with STARTTLS (0: any free port).
    #[arg(long, env = "MAILVAULT_LMTP_PORT", default_value_t = 2424)]
    lmtp_port: u16,
    /// POP3 with STLS.
    #[arg(long, env = "MAILVAULT_POP3_PORT", default_value_t = 1110)]
    pop3_port: u16,
    /// POP3 in TLS from the first byte.
    #[arg(long, env = "MAILVAULT_POP3S_PORT", default_value_t = 1995)]
    pop3s_port: u16,
    /// IMAP with STARTTLS.
    #[arg(long, env = "MAILVAULT_IMAP_PORT", default_value_t = 1143)]
    imap_port: u16,
    /// IMAP in TLS from the first byte.
    #[arg(long, env = "MAILVAULT_IMAPS_PORT", default_value_t = 1993)]
    imaps_port: u16,
    /// The certificate chain (PEM); default: a self-signed one in `<data-dir>/../tls`, made on
    /// first run.
    #[arg(long, env = "MAILVAULT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "MAILVAULT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The server's name in greetings and in a generated certificate.
    #[arg(long, env = "MAILVAULT_HOSTNAME", default_value = "localhost")]
    hostname: String,
    /// Listener threads (default: one per core).
    #[arg(long, env = "MAILVAULT_LISTENER_THREADS", conflicts_with = "frontends_on_shards")]
    listener_threads: Option<usize>,
    /// Runs the listeners and their sessions on the engine shards' threads (one worker per
    /// shard) instead of threads of their own: a session's requests to the shard it runs on
    /// cross no thread. That halved the engine's CPU per fetch in the operator bench, but gained
    /// nothing measurable end to end through TLS on 2 cores (bench/README.md, session 20), so it
    /// is off by default. Connections are then limited to 4096.
    #[arg(long, env = "MAILVAULT_FRONTENDS_ON_SHARDS")]
    frontends_on_shards: bool,
    /// Most connections open at once, all listeners together.
    #[arg(long, env = "MAILVAULT_CONNECTIONS_MAX", default_value_t = mailvault_frontends::session::registry::CONNECTIONS_MAX)]
    connections_max: usize,
    /// Days between `account close` and the account's purge (37 to 365).
    #[arg(long, env = "MAILVAULT_ACCOUNT_PURGE_DELAY_DAYS", default_value_t = mailvault_engine::PURGE_DELAY_DAYS_DEFAULT)]
    account_purge_delay_days: u32,
    /// Background compaction's disk budget in MB/s, reads plus writes (0: unthrottled).
    /// `mailvault compact` always runs at full speed.
    #[arg(long, env = "MAILVAULT_COMPACTION_MB_PER_SECOND", default_value_t = 100)]
    compaction_mb_per_second: u64,
    /// Seconds between an idle shard's looks for segments that came to qualify for compaction.
    #[arg(long, env = "MAILVAULT_COMPACTION_CHECK_SECONDS", default_value_t = 60)]
    compaction_check_seconds: u64,
    /// Days between background scrub passes (0: no background scrub). Each pass reads every
    /// sealed segment and checks its frames, footer and AEAD tags; damage is logged as an
    /// error and kept in each shard's `scrub-state` file.
    #[arg(long, env = "MAILVAULT_SCRUB_INTERVAL_DAYS", default_value_t = 7)]
    scrub_interval_days: u64,
    /// The background scrub's reads in MB/s, per shard (0: unthrottled).
    #[arg(long, env = "MAILVAULT_SCRUB_MB_PER_SECOND", default_value_t = 16)]
    scrub_mb_per_second: u64,
    /// Compacted segment files each shard keeps and writes its next segments over (0: every
    /// compacted file is removed). Commits over blocks written before sync faster than into
    /// fresh space (1.3-1.5x on the disks measured); each kept file holds up to a segment's
    /// disk space until reused. A prune or purge removes them.
    #[arg(long, env = "MAILVAULT_RECYCLED_SEGMENTS", default_value_t = mailvault_engine::RECYCLED_SEGMENTS_MAX_DEFAULT)]
    recycled_segments: usize,
}

/// Creates the store if missing (keeping an existing one's shard count) and the HSM keys.
pub(crate) fn init(context: &Context, shards: Option<usize>) -> anyhow::Result<StoreMetadata> {
    let shards = match (shards, StoreMetadata::read(&context.data_dir)) {
        (Some(shards), _) => shards,
        (None, Ok(existing)) => existing.shards,
        (None, Err(_)) => default_shards(),
    };
    let hsm = context.hsm()?;
    let status = hsm.session()?.ensure_keys().context("creating HSM keys")?;
    let metadata = init_store(&context.data_dir, shards)?;
    println!(
        "store {} ready: {} shards; HSM token `{}`: KEK v{}",
        context.data_dir.display(),
        metadata.shards,
        hsm.token_label(),
        status.current_kek.unwrap_or(0)
    );
    Ok(metadata)
}

fn server_config(context: &Context, arguments: &ServeArguments) -> ServerConfig {
    let mut config = ServerConfig::new(&context.data_dir);
    config.listen_address = arguments.listen;
    config.ports = Ports {
        lmtp: Some(arguments.lmtp_port),
        pop3: Some(arguments.pop3_port),
        pop3_tls: Some(arguments.pop3s_port),
        imap: Some(arguments.imap_port),
        imap_tls: Some(arguments.imaps_port),
    };
    if let (Some(certificate), Some(key)) = (&arguments.tls_cert, &arguments.tls_key) {
        config.certificate = CertificateSource::Files { certificate: certificate.clone(), key: key.clone() };
    }
    config.host_name.clone_from(&arguments.hostname);
    config.connections_max = arguments.connections_max;
    if let Some(threads) = arguments.listener_threads {
        config.workers = threads;
    }
    config.frontends_on_shards = arguments.frontends_on_shards;
    config
}

/// Opens the store, listens, and serves until SIGTERM or SIGINT; then stops accepting, lets
/// sessions finish (deliveries in progress are acknowledged only once durable; a client in the
/// middle of sending a message is told to retry, and nothing of it is kept), and exits.
pub(crate) fn serve(context: &Context, arguments: &ServeArguments) -> anyhow::Result<()> {
    init(context, arguments.shards)?;
    // Registered before any thread starts, so that no signal can arrive unhandled.
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("installing signal handlers")?;
    let hsm = context.hsm()?;
    mailvault_engine::check_purge_delay_days(arguments.account_purge_delay_days)?;
    let mut engine_config = context.engine_config(&hsm);
    engine_config.account_purge_delay_days = arguments.account_purge_delay_days;
    engine_config.compaction_bytes_per_second =
        (arguments.compaction_mb_per_second > 0).then(|| arguments.compaction_mb_per_second.saturating_mul(1_000_000));
    engine_config.compaction_check_interval = std::time::Duration::from_secs(arguments.compaction_check_seconds.max(1));
    engine_config.scrub_interval = (arguments.scrub_interval_days > 0)
        .then(|| std::time::Duration::from_secs(arguments.scrub_interval_days.saturating_mul(24 * 3600)));
    engine_config.scrub_bytes_per_second =
        (arguments.scrub_mb_per_second > 0).then(|| arguments.scrub_mb_per_second.saturating_mul(1_000_000));
    engine_config.recycled_segments_max = arguments.recycled_segments;
    let engine = context.open_engine_with(&engine_config, &hsm)?;
    let server = RunningServer::start(engine.clone(), &hsm, &server_config(context, arguments))?;
    if server.generated_certificate() {
        println!("generated a self-signed TLS certificate: {}", server.certificate_path().display());
    }
    for (kind, address) in server.listening() {
        println!("listening {kind} {address}");
    }
    if let Some(socket) = server.admin_socket() {
        println!("admin socket {}", socket.display());
    }
    if arguments.frontends_on_shards {
        println!("sessions served on the {} shard threads", engine.shard_count());
    }
    println!("mailvault serving store {} (stop with SIGTERM or Ctrl-C)", context.data_dir.display());
    std::io::stdout().flush()?;
    let signal = signals.forever().next();
    println!("signal {} received: stopping", signal.unwrap_or_default());
    server.shutdown();
    // The shards stop once their queues are drained; every acknowledged write is durable. Not
    // a drop: the process must not exit while a shard still writes its last checkpoint, and a
    // drop returns at once when a handle is still held elsewhere.
    engine.shut_down();
    println!("mailvault stopped");
    Ok(())
}

//! The server: configuration, startup (TLS, sockets, password checkers, one listener thread per
//! core, the admin socket) and an orderly stop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mailvault_engine::Engine;
use mailvault_hsm::Hsm;

use super::listener::{ListenerKind, bind_group};
use super::tls::{self, CertificateSource, LoadedTls, TlsSetupError};
use super::worker::{self, Worker, WorkerShared};
use crate::admin::server::AdminServer;
use crate::session::auth::{Authenticator, RateLimit};
use crate::session::context::{ProtocolSettings, Services};
use crate::session::registry::{CONNECTIONS_MAX, Protocol, SessionRegistry};

/// How long in-flight sessions get to finish after a stop was requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Port numbers per listener; `None` turns a listener off, `Some(0)` picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub lmtp: Option<u16>,
    pub pop3: Option<u16>,
    pub pop3_tls: Option<u16>,
    pub imap: Option<u16>,
    pub imap_tls: Option<u16>,
}

impl Ports {
    /// Unprivileged ports for a development box (the standard ones are 24, 110, 995, 143, 993).
    pub const DEVELOPMENT: Self =
        Self { lmtp: Some(2424), pop3: Some(1110), pop3_tls: Some(1995), imap: Some(1143), imap_tls: Some(1993) };
    /// Every listener on a free port (tests).
    pub const EPHEMERAL: Self =
        Self { lmtp: Some(0), pop3: Some(0), pop3_tls: Some(0), imap: Some(0), imap_tls: Some(0) };

    pub fn get(&self, kind: ListenerKind) -> Option<u16> {
        match kind {
            ListenerKind::Lmtp => self.lmtp,
            ListenerKind::Pop3 => self.pop3,
            ListenerKind::Pop3Tls => self.pop3_tls,
            ListenerKind::Imap => self.imap,
            ListenerKind::ImapTls => self.imap_tls,
        }
    }
}

/// Everything `mailvault serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Loopback by default: exposing the server is a deliberate act.
    pub listen_address: IpAddr,
    pub ports: Ports,
    pub certificate: CertificateSource,
    /// The name in greetings and in a generated certificate.
    pub host_name: String,
    /// Listener threads (one per core by default); with `frontends_on_shards`, one worker per
    /// shard instead.
    pub workers: usize,
    /// Runs each listener worker, and the sessions it accepts, on an engine shard's thread
    /// (worker `i` on shard `i`) instead of a thread of its own: a session's requests to that
    /// shard then cross no thread. A quarantined shard's worker gets a thread of its own.
    pub frontends_on_shards: bool,
    /// Pin listener thread `i` to core `i`.
    pub pin_threads: bool,
    /// Threads checking passwords (argon2id).
    pub verifier_threads: usize,
    pub rate_limit: RateLimit,
    pub lmtp: ProtocolSettings,
    pub pop3: ProtocolSettings,
    pub imap: ProtocolSettings,
    pub shutdown_grace: Duration,
    /// Most connections open at once (all listeners, all cores).
    pub connections_max: usize,
    /// The operator's Unix socket (`<data-dir>/admin.sock`); `None` for no admin socket.
    pub admin_socket: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults for a store in `data_dir`: development ports on 127.0.0.1, a self-signed
    /// certificate in `<data-dir>/../tls`, the admin socket in the data directory.
    pub fn new(data_dir: &Path) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: Ports::DEVELOPMENT,
            certificate: CertificateSource::SelfSigned { directory: default_tls_directory(data_dir) },
            host_name: "localhost".to_owned(),
            workers: cores,
            frontends_on_shards: false,
            pin_threads: false,
            verifier_threads: cores.div_ceil(2),
            rate_limit: RateLimit::default(),
            lmtp: ProtocolSettings::default_for(Protocol::Lmtp),
            pop3: ProtocolSettings::default_for(Protocol::Pop3),
            imap: ProtocolSettings::default_for(Protocol::Imap),
            shutdown_grace: SHUTDOWN_GRACE,
            connections_max: CONNECTIONS_MAX,
            admin_socket: Some(data_dir.join(crate::admin::SOCKET_FILE)),
        }
    }
}

/// `<data-dir>/../tls`: beside the store, not in it (a backup of the store carries no key).
pub fn default_tls_directory(data_dir: &Path) -> PathBuf {
    data_dir.parent().unwrap_or(Path::new(".")).join("tls")
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("TLS: {0}")]
    Tls(#[from] TlsSetupError),
    #[error("listening on {address} ({kind}): {source}")]
    Bind { kind: ListenerKind, address: SocketAddr, source: std::io::Error },
    #[error("admin socket {path}: {source}")]
    Admin { path: String, source: std::io::Error },
    #[error("starting threads: {0}")]
    Threads(#[from] std::io::Error),
    #[error("starting listeners on the shards' threads: {0}")]
    OnShards(#[from] mailvault_engine::EngineError),
    /// With frontends on the shards, every connection's task may await another thread at once,
    /// and each shard's runtime has room for only so many such wakes (`SHARD_WAKE_QUEUE_ENTRIES`).
    #[error("at most {limit} connections with frontends on the shards' threads ({requested} asked for)")]
    TooManyConnections { requested: usize, limit: usize },
}

/// Most connections when frontends run on the shards' threads: half a shard runtime's wake
/// queue, so that even with every connection on one shard, each awaiting an answer from
/// another thread, there is room to spare.
pub const CONNECTIONS_MAX_ON_SHARDS: usize = mailvault_engine::SHARD_WAKE_QUEUE_ENTRIES / 2;

/// A started server. Dropping it stops it (as [`RunningServer::shutdown`] does).
#[derive(Debug)]
pub struct RunningServer {
    services: Arc<Services>,
    stop: Option<flume::Sender<()>>,
    workers: Vec<Worker>,
    listening: Vec<(ListenerKind, SocketAddr)>,
    tls: LoadedTls,
    admin: Option<AdminServer>,
}

impl RunningServer {
    /// Loads TLS, binds every port, and starts listening.
    pub fn start(engine: Engine, hsm: &Hsm, config: &ServerConfig) -> Result<Self, StartError> {
        if config.frontends_on_shards && config.connections_max > CONNECTIONS_MAX_ON_SHARDS {
            return Err(StartError::TooManyConnections {
                requested: config.connections_max,
                limit: CONNECTIONS_MAX_ON_SHARDS,
            });
        }
        let tls = tls::load(&config.certificate, std::slice::from_ref(&config.host_name))?;
        let workers = if config.frontends_on_shards { engine.shard_count() } else { config.workers.max(1) };
        let mut per_worker: Vec<Vec<(ListenerKind, std::net::TcpListener)>> =
            (0..workers).map(|_| Vec::new()).collect();
        let mut listening = Vec::new();
        for kind in ListenerKind::ALL {
            let Some(port) = config.ports.get(kind) else { continue };
            let address = SocketAddr::new(config.listen_address, port);
            let (bound, sockets) =
                bind_group(address, workers).map_err(|source| StartError::Bind { kind, address, source })?;
            listening.push((kind, bound));
            for (worker, socket) in per_worker.iter_mut().zip(sockets) {
                worker.push((kind, socket));
            }
        }
        let registry = SessionRegistry::with_connections_max(config.connections_max);
        let authenticator = Authenticator::start(engine.clone(), hsm, config.verifier_threads, config.rate_limit)?;
        let services = Arc::new(Services {
            engine: engine.clone(),
            registry: registry.clone(),
            authenticator,
            host_name: config.host_name.clone(),
            tls_available: true,
            lmtp: config.lmtp,
            pop3: config.pop3,
            imap: config.imap,
        });
        let admin = match &config.admin_socket {
            Some(path) => Some(
                AdminServer::start(path, engine, hsm.clone(), registry)
                    .map_err(|source| StartError::Admin { path: path.display().to_string(), source })?,
            ),
            None => None,
        };
        let (stop, stopped) = flume::bounded(1);
        let shared = WorkerShared {
            services: services.clone(),
            tls: tls.config.clone(),
            stop: stopped,
            shutdown_grace: config.shutdown_grace,
        };
        let mut server = Self { services, stop: Some(stop), workers: Vec::new(), listening, tls, admin };
        let quarantined: Vec<usize> =
            server.engine().quarantined_shards().iter().map(|shard| shard.shard_id as usize).collect();
        for (index, listeners) in per_worker.into_iter().enumerate() {
            let worker = if config.frontends_on_shards && !quarantined.contains(&index) {
                worker::spawn_on_shard(server.engine(), index, listeners, shared.clone())?
            } else {
                worker::spawn(index, listeners, shared.clone(), config.pin_threads.then_some(index))?
            };
            server.workers.push(worker);
        }
        Ok(server)
    }

    /// Where each listener is, ports resolved.
    pub fn listening(&self) -> &[(ListenerKind, SocketAddr)] {
        &self.listening
    }

    pub fn address(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.listening.iter().find(|(listening, _)| *listening == kind).map(|(_, address)| *address)
    }

    pub fn certificate_path(&self) -> &Path {
        &self.tls.certificate_path
    }

    /// Whether this start generated the self-signed certificate.
    pub fn generated_certificate(&self) -> bool {
        self.tls.generated
    }

    pub fn admin_socket(&self) -> Option<&Path> {
        self.admin.as_ref().map(AdminServer::path)
    }

    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.services.registry
    }

    pub fn engine(&self) -> &Engine {
        &self.services.engine
    }

    /// Stops accepting, asks every session to end (LMTP deliveries in progress finish and are
    /// acknowledged; a client mid-DATA is told 421 and nothing of its message is stored), waits
    /// up to the grace period, and returns once every listener worker has ended, with every task
    /// it started dropped (none is left holding a handle on the engine).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if std::thread::panicking() && self.workers.iter().any(Worker::is_on_shard) {
            // Stopping wakes the workers' tasks on the shards' runtimes from this thread, and
            // compio aborts the process on a cross-thread wake made while unwinding. They are
            // left running: the panic is taking the process (or the test) down anyway.
            std::mem::forget(self.stop.take());
            return;
        }
        self.services.registry.shut_down();
        if let Some(admin) = self.admin.take() {
            admin.stop();
        }
        self.stop = None;
        for worker in self.workers.drain(..) {
            worker.wait();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

//! One listener worker per core: its own `SO_REUSEPORT` socket for every port, and the sessions
//! of the connections it accepted, on one compio runtime: a thread of its own, or a task on an
//! engine shard's thread (`ServerConfig::frontends_on_shards`). On stop it closes its sockets,
//! lets its sessions finish (they were asked to by the registry) within the grace period, and
//! ends.

use std::cell::RefCell;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compio::runtime::JoinHandle as Task;
use mailvault_engine::{Engine, EngineError, ShardTaskHandle};
use rustls::ServerConfig;

use super::dispatch;
use super::listener::ListenerKind;
use crate::session::context::Services;

/// Pause after a failed accept (out of file descriptors, say) before trying again, so that the
/// loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every worker shares.
#[derive(Debug, Clone)]
pub(super) struct WorkerShared {
    pub services: Arc<Services>,
    pub tls: Arc<ServerConfig>,
    /// Disconnected (its sender dropped) when the server stops.
    pub stop: flume::Receiver<()>,
    pub shutdown_grace: Duration,
}

type Sessions = Rc<RefCell<Vec<Task<()>>>>;

/// A running worker, to wait for once the server stops it.
#[derive(Debug)]
pub(super) enum Worker {
    Thread(JoinHandle<()>),
    OnShard(ShardTaskHandle<()>),
}

impl Worker {
    pub(super) fn is_on_shard(&self) -> bool {
        matches!(self, Self::OnShard(_))
    }

    /// Returns once the worker has ended (its sessions finished or were cut off).
    pub(super) fn wait(self) {
        match self {
            Self::Thread(thread) => {
                let _ = thread.join();
            }
            Self::OnShard(task) => {
                if let Err(error) = task.join_blocking() {
                    tracing::warn!(%error, "a listener worker on a shard's thread did not end cleanly");
                }
            }
        }
    }
}

/// Starts worker `index` on its own thread, pinned to `core` if given.
pub(super) fn spawn(
    index: usize,
    listeners: Vec<(ListenerKind, TcpListener)>,
    shared: WorkerShared,
    core: Option<usize>,
) -> std::io::Result<Worker> {
    let thread = std::thread::Builder::new().name(format!("mailvault-net-{index}")).spawn(move || {
        let mut builder = compio::runtime::RuntimeBuilder::new();
        if let Some(core) = core {
            builder.thread_affinity(std::iter::once(core).collect());
        }
        match mailvault_engine::io::build_runtime(&mut builder) {
            Ok(runtime) => runtime.block_on(run(listeners, shared)),
            Err(error) => tracing::error!(%error, index, "cannot start a listener runtime"),
        }
    })?;
    Ok(Worker::Thread(thread))
}

/// Starts a worker as a task on shard `shard_id`'s thread: its sessions' requests to that
/// shard then cross no thread (`Engine::spawn_on_shard`).
pub(super) fn spawn_on_shard(
    engine: &Engine,
    shard_id: usize,
    listeners: Vec<(ListenerKind, TcpListener)>,
    shared: WorkerShared,
) -> Result<Worker, EngineError> {
    Ok(Worker::OnShard(engine.spawn_on_shard(shard_id, move || run(listeners, shared))?))
}

async fn run(listeners: Vec<(ListenerKind, TcpListener)>, shared: WorkerShared) {
    let sessions: Sessions = Rc::default();
    // Every task the worker starts holds a sender; the receiver disconnects once all are gone.
    let (alive, all_gone) = flume::bounded::<()>(1);
    let mut accepting = Vec::new();
    for (kind, listener) in listeners {
        match compio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                let accept = accept_loop(listener, kind, shared.clone(), sessions.clone(), alive.clone());
                accepting.push(compio::runtime::spawn(accept));
            }
            Err(error) => tracing::error!(%error, %kind, "cannot listen"),
        }
    }
    // Only ever disconnected: the server drops the sender to stop every worker at once.
    let _ = shared.stop.recv_async().await;
    // Cancelling the accept loops drops (closes) the listening sockets.
    drop(accepting);
    let deadline = Instant::now() + shared.shutdown_grace;
    let running: Vec<Task<()>> = sessions.borrow_mut().drain(..).collect();
    let mut abandoned = 0;
    for session in running {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if compio::time::timeout(remaining, session).await.is_err() {
            abandoned += 1;
        }
    }
    if abandoned > 0 {
        tracing::warn!(abandoned, "sessions still running after the shutdown grace period were cut off");
    }
    // A task cancelled by dropping its handle is dropped by a later turn of the runtime, not at
    // once. Waiting for that means that nothing of a stopped worker outlives it: on a shard's
    // thread, a task left behind would hold a handle on the engine, and drop it after the
    // server thought every such handle gone.
    drop(alive);
    let _ = all_gone.recv_async().await;
}

/// Runs `task`, holding `alive` until the task ends or is dropped.
async fn holding<F: Future>(alive: flume::Sender<()>, task: F) -> F::Output {
    let _alive = alive;
    task.await
}

/// Accepts connections and starts their sessions, each holding a clone of `alive` (as this
/// loop does its own, until it is dropped).
async fn accept_loop(
    listener: compio::net::TcpListener,
    kind: ListenerKind,
    shared: WorkerShared,
    sessions: Sessions,
    alive: flume::Sender<()>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let serve = dispatch::serve_connection(stream, peer, kind, shared.services.clone(), shared.tls.clone());
                let session = compio::runtime::spawn(holding(alive.clone(), serve));
                let mut sessions = sessions.borrow_mut();
                sessions.retain(|session| !session.is_finished());
                sessions.push(session);
            }
            Err(error) => {
                tracing::warn!(%error, %kind, "accept failed");
                compio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

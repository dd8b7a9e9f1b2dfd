//! The admin socket's server side: its own thread and runtime, one command per connection,
//! up to [`COMMANDS_AT_ONCE_MAX`] connections served at once (a client slow to send its
//! command is cut off by a timeout).

use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use compio::buf::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::UnixStream;
use mailvault_engine::Engine;
use mailvault_hsm::Hsm;
use zeroize::Zeroize;

use super::command::{AdminCommand, AdminReply};
use super::execute::execute;
use super::wire::{Decoded, decode_request, encode_reply};
use crate::session::context::{Either, first};
use crate::session::registry::SessionRegistry;

/// How long a client may take to send its command, and to read its reply. A slow client
/// holds one of the [`COMMANDS_AT_ONCE_MAX`] places until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminTimeouts {
    pub request: Duration,
    pub reply: Duration,
}

impl Default for AdminTimeouts {
    /// 10 s to send a command; 120 s to read a reply (a 50 MiB message from `cat`, say).
    fn default() -> Self {
        Self { request: Duration::from_secs(10), reply: Duration::from_secs(120) }
    }
}
/// How long a stopping server waits for the commands that change the store to answer.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The running admin socket; [`AdminServer::stop`] (or dropping it) closes it.
#[derive(Debug)]
pub struct AdminServer {
    path: PathBuf,
    stop: Option<flume::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `path` with mode 0600. The socket is created under a temporary name, restricted, then
/// renamed into place, so no other user can connect during the moment between bind and chmod.
fn bind(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    // We hold the store lock, so a socket file left here is a dead server's.
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut suffix = [0_u8; 8];
    getrandom::fill(&mut suffix).map_err(|error| std::io::Error::other(error.to_string()))?;
    let suffix = hex::encode(suffix);
    let temporary = path.with_file_name(format!(".admin-{suffix}.sock"));
    let listener = std::os::unix::net::UnixListener::bind(&temporary)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(listener)
}

impl AdminServer {
    pub fn start(path: &Path, engine: Engine, hsm: Hsm, registry: Arc<SessionRegistry>) -> std::io::Result<Self> {
        Self::start_with_timeouts(path, engine, hsm, registry, AdminTimeouts::default())
    }

    pub fn start_with_timeouts(
        path: &Path,
        engine: Engine,
        hsm: Hsm,
        registry: Arc<SessionRegistry>,
        timeouts: AdminTimeouts,
    ) -> std::io::Result<Self> {
        let listener = bind(path)?;
        let (stop, stopped) = flume::bounded::<()>(1);
        let thread = std::thread::Builder::new().name("mailvault-admin".to_owned()).spawn(move || {
            match mailvault_engine::io::build_runtime(&mut compio::runtime::RuntimeBuilder::new()) {
                Ok(runtime) => runtime.block_on(run(listener, engine, hsm, registry, timeouts, stopped)),
                Err(error) => tracing::error!(%error, "cannot start the admin socket's runtime"),
            }
        })?;
        Ok(Self { path: path.to_owned(), stop: Some(stop), thread: Some(thread) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the socket, cancels the commands still waiting for their answer, and removes its file.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Commands served at once. A `compact` waits as long as the rewrite takes; the others (and
/// the progress polls of the CLI waiting for it) go on beside it. Operators are few: more is a
/// runaway script, told to wait.
const COMMANDS_AT_ONCE_MAX: usize = 16;

async fn run(
    listener: std::os::unix::net::UnixListener,
    engine: Engine,
    hsm: Hsm,
    registry: Arc<SessionRegistry>,
    timeouts: AdminTimeouts,
    stopped: flume::Receiver<()>,
) {
    let listener = match compio::net::UnixListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "admin socket");
            return;
        }
    };
    let served = Rc::new((engine, hsm, registry));
    // Dropped on return, which cancels the commands still running. A stopping server first
    // gives the commands that change the store up to STOP_GRACE to answer (an append's uid, a
    // new app password shown once); it does not wait for a compaction (the shards finish or
    // resume it by themselves).
    let mut running: Vec<Running> = Vec::new();
    loop {
        match first(stopped.recv_async(), listener.accept()).await {
            Either::Left(_) => {
                let deadline = std::time::Instant::now() + STOP_GRACE;
                while running.iter().any(Running::must_answer_before_stop) && std::time::Instant::now() < deadline {
                    compio::time::sleep(Duration::from_millis(20)).await;
                }
                return;
            }
            Either::Right(Ok((stream, _))) => {
                running.retain(|command| !command.task.is_finished());
                if running.len() >= COMMANDS_AT_ONCE_MAX {
                    let busy = format!("{COMMANDS_AT_ONCE_MAX} admin commands are running: try again when one ends");
                    reply(stream, AdminReply::failed(busy), timeouts.reply).await;
                    continue;
                }
                let served = Rc::clone(&served);
                let answer_before_stop = Rc::new(Cell::new(false));
                let flag = Rc::clone(&answer_before_stop);
                let task = compio::runtime::spawn(async move {
                    let (engine, hsm, registry) = &*served;
                    serve(stream, engine, hsm, registry, timeouts, &flag).await;
                });
                running.push(Running { task, answer_before_stop });
            }
            Either::Right(Err(error)) => {
                tracing::warn!(%error, "admin socket accept failed");
                compio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A command being served.
struct Running {
    task: compio::runtime::JoinHandle<()>,
    /// Set once its command is read, unless it waits for a compaction.
    answer_before_stop: Rc<Cell<bool>>,
}

impl Running {
    fn must_answer_before_stop(&self) -> bool {
        self.answer_before_stop.get() && !self.task.is_finished()
    }
}

/// `answer_before_stop` is set once the command is read, unless it waits for a compaction.
async fn serve(
    mut stream: UnixStream,
    engine: &Engine,
    hsm: &Hsm,
    registry: &SessionRegistry,
    timeouts: AdminTimeouts,
    answer_before_stop: &Cell<bool>,
) {
    let answer = match compio::time::timeout(timeouts.request, read_request(&mut stream)).await {
        Ok(Ok(command)) => {
            answer_before_stop.set(!command.waits_for_compaction());
            // The progress line polls this a few times a second: not worth a log line each.
            if command == AdminCommand::CompactionStatus {
                tracing::debug!(?command, "admin command");
            } else {
                tracing::info!(?command, "admin command");
            }
            match execute(command, engine, hsm, Some(registry)).await {
                Ok(output) => AdminReply::answered(output),
                Err(error) => AdminReply::failed(error.to_string()),
            }
        }
        Ok(Err(error)) => AdminReply::failed(error),
        Err(_elapsed) => AdminReply::failed("timed out waiting for the command".to_owned()),
    };
    reply(stream, answer, timeouts.reply).await;
}

/// Writes the reply's line, then its payload, within `timeout`: a client that stops reading
/// would otherwise hold its place among the commands at once for good.
async fn reply(mut stream: UnixStream, reply: AdminReply, timeout: Duration) {
    match compio::time::timeout(timeout, stream.write_all(encode_reply(&reply))).await {
        Ok(BufResult(Ok(()), _)) => {}
        Ok(BufResult(Err(error), _)) => tracing::debug!(%error, "admin reply not delivered"),
        Err(_elapsed) => tracing::warn!("admin reply not delivered: the client read none of it for {timeout:?}"),
    }
}

/// Reads one command: its JSON line, and the payload after it that it announces.
async fn read_request(stream: &mut UnixStream) -> Result<AdminCommand, String> {
    let mut request = Vec::new();
    let command = loop {
        match decode_request(&request) {
            Ok(Decoded::Complete { value, consumed_bytes }) if consumed_bytes == request.len() => break Ok(value),
            Ok(Decoded::Complete { .. }) => break Err("more bytes followed the command than it announced".to_owned()),
            Ok(Decoded::NeedsMore) => match read_some(stream).await {
                Ok(chunk) => request.extend_from_slice(&chunk),
                Err(error) => break Err(error),
            },
            Err(error) => break Err(error),
        }
    };
    request.zeroize(); // it may carry a password
    command
}

async fn read_some(stream: &mut UnixStream) -> Result<Vec<u8>, String> {
    let BufResult(result, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
    match result {
        Ok(0) => Err("admin request ended early".to_owned()),
        Ok(_) => Ok(chunk),
        Err(error) => Err(format!("reading the admin request: {error}")),
    }
}

//! Runs an operator command where the store is: on the engine directly when no server has it
//! open, or through the running server's admin socket when one does (the store is locked by
//! the server, and only the server can end its live sessions).

use anyhow::Context as _;
use mailvault_engine::{Engine, OpenError, block_on};
use std::io::Write as _;

use mailvault_frontends::admin::{self, AdminCommand, AdminOutput};

use super::Context;
use super::compaction_progress::{showing_progress, showing_remote_progress};
use super::context::warn_of_quarantined_shards;

/// Runs `command` and prints its output. Commands that wait for compaction show its progress
/// on a terminal meanwhile.
pub(crate) fn run(context: &Context, command: AdminCommand) -> anyhow::Result<()> {
    mailvault_engine::StoreMetadata::read(&context.data_dir)?;
    let hsm = context.hsm()?;
    let waits_for_compaction = command.waits_for_compaction();
    let output = match Engine::open(&context.engine_config(&hsm), &hsm) {
        Ok(engine) => {
            warn_of_quarantined_shards(&engine);
            let running = admin::execute(command, &engine, &hsm, None);
            if waits_for_compaction { block_on(showing_progress(&engine, running)) } else { block_on(running) }?
        }
        Err(OpenError::InUse(_)) => {
            let socket = context.data_dir.join(admin::SOCKET_FILE);
            let reply = if waits_for_compaction {
                showing_remote_progress(&socket, &command)
            } else {
                admin::send(&socket, &command)
            }
            .with_context(|| format!("the store is in use; asking the server at {}", socket.display()))?;
            anyhow::ensure!(reply.ok, "{}", reply.output);
            AdminOutput { text: reply.output, bytes: reply.payload }
        }
        Err(error) => return Err(context.open_failed(error)),
    };
    print(&output)
}

/// The text as a line, the bytes (a message) as they are.
fn print(output: &AdminOutput) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if !output.text.is_empty() {
        writeln!(stdout, "{}", output.text)?;
    }
    stdout.write_all(&output.bytes)?;
    stdout.flush()?;
    Ok(())
}

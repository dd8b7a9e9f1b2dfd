//! Runs an account command where the store is: on the engine directly when no server has it
//! open, or through the running server's admin socket when one does (the store is locked by
//! the server, and only the server can end its live sessions).

use anyhow::Context as _;
use mailvault_engine::{Engine, OpenError, block_on};
use mailvault_frontends::admin::{self, AdminCommand};

use super::Context;

/// Runs `command` and prints its output.
pub(crate) fn run(context: &Context, command: AdminCommand) -> anyhow::Result<()> {
    mailvault_engine::StoreMetadata::read(&context.data_dir)?;
    let hsm = context.hsm()?;
    match Engine::open(&context.engine_config(&hsm), &hsm) {
        Ok(engine) => {
            let output = block_on(admin::execute(command, &engine, &hsm, None))?;
            println!("{output}");
            Ok(())
        }
        Err(OpenError::InUse(_)) => {
            let socket = context.data_dir.join(admin::SOCKET_FILE);
            let reply = admin::send(&socket, &command)
                .with_context(|| format!("the store is in use; asking the server at {}", socket.display()))?;
            if reply.ok {
                println!("{}", reply.output);
                Ok(())
            } else {
                anyhow::bail!("{}", reply.output)
            }
        }
        Err(error) => Err(context.open_failed(error)),
    }
}

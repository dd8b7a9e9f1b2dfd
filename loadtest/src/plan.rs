//! Everything a run needs, built once from the command line and shared by the phases.

use std::time::Duration;

use crate::accounts::Accounts;
use crate::corpus::Corpus;
use crate::endpoint::Endpoint;
use crate::tls::TlsSettings;

/// The settings of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub corpus: Corpus,
    pub accounts: Accounts,
    /// Messages delivered (and expected back).
    pub messages: u64,
    /// Concurrent connections per phase.
    pub connections: usize,
    pub lmtp: Endpoint,
    pub pop3: Endpoint,
    pub imap: Endpoint,
    /// `None` when every endpoint is plain.
    pub tls: Option<TlsSettings>,
    /// Read and write timeout of every socket.
    pub timeout: Duration,
    /// The envelope sender of deliveries.
    pub sender: String,
    /// The name sent with LHLO.
    pub client_name: String,
    /// Processes whose CPU time is the server's (each with its descendants).
    pub server_pids: Vec<u32>,
    /// Draw progress bars on standard error.
    pub progress: bool,
}

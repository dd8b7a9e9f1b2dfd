//! How every mailvault runtime sets up its io_uring: for one thread, which is how each is used
//! (a runtime per shard, per network worker, per caller thread).
//!
//! Told that only its creating thread submits (`SINGLE_ISSUER`), the kernel skips the ring's
//! locking. Told to defer completion work (`DEFER_TASKRUN`, with `COOP_TASKRUN` and the
//! `TASKRUN` flag), it finishes a completed read's work when the thread next enters the kernel,
//! in a batch, instead of interrupting the thread for each one as it runs. Measured with the
//! bench's 4 KiB random fetches (bench/README.md, session 23): 7% less shard CPU and 9% less
//! load generator CPU per fetch, 8% more fetches per second; appends unchanged; end to end, 4–8%
//! more messages per server CPU-second.
//!
//! A kernel older than 6.1 refuses these flags (`EINVAL`); the runtime then gets a plain ring.

use std::io;

use compio::driver::ProactorBuilder;
use compio::runtime::{Runtime, RuntimeBuilder};

/// Builds `builder`'s runtime on a ring set up for its one thread, or on a plain ring where
/// the kernel does not know those settings. Call it on the thread that will run the runtime:
/// the kernel refuses submissions from any other.
pub fn build_runtime(builder: &mut RuntimeBuilder) -> io::Result<Runtime> {
    tuned_or_plain(|proactor| builder.with_proactor(proactor).build())
}

/// The ring settings for a runtime that only its own thread drives.
fn single_thread_ring() -> ProactorBuilder {
    let mut proactor = ProactorBuilder::new();
    proactor.single_issuer(true).defer_taskrun(true).coop_taskrun(true).taskrun_flag(true);
    proactor
}

/// `build` with the single-thread settings, and again with the defaults if the kernel refuses
/// them; any other error is returned as it is.
fn tuned_or_plain<T>(mut build: impl FnMut(ProactorBuilder) -> io::Result<T>) -> io::Result<T> {
    match build(single_thread_ring()) {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
            tracing::info!("io_uring's single-thread settings need Linux 6.1 or later; this runtime uses a plain ring");
            build(ProactorBuilder::new())
        }
        tuned => tuned,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_kernel_that_refuses_the_settings_gets_a_plain_ring() {
        let tries = Cell::new(0);
        let built = tuned_or_plain(|proactor| {
            tries.set(tries.get() + 1);
            let tuned = format!("{proactor:?}").contains("single_issuer: true");
            if tuned { Err(io::Error::from_raw_os_error(libc::EINVAL)) } else { Ok("plain") }
        });
        assert_eq!(built.expect("the plain ring"), "plain");
        assert_eq!(tries.get(), 2);
    }

    #[test]
    fn other_errors_are_not_retried() {
        let tries = Cell::new(0);
        let built: io::Result<()> = tuned_or_plain(|_| {
            tries.set(tries.get() + 1);
            Err(io::Error::from_raw_os_error(libc::ENOMEM))
        });
        assert_eq!(built.expect_err("refused").raw_os_error(), Some(libc::ENOMEM));
        assert_eq!(tries.get(), 1);
    }

    /// This machine's kernel takes the settings (CI's does): the tuned ring reads a file.
    #[test]
    fn a_tuned_runtime_reads_a_file() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("file");
        std::fs::write(&path, b"ring bytes").expect("write");
        let built = single_thread_ring_runtime().expect("this kernel takes the single-thread settings");
        let read = built.block_on(async {
            let file = compio::fs::File::open(&path).await.expect("open");
            let compio::BufResult(result, bytes) =
                compio::io::AsyncReadAtExt::read_exact_at(&file, Vec::with_capacity(10), 0).await;
            result.expect("read");
            bytes
        });
        assert_eq!(read, b"ring bytes");
    }

    fn single_thread_ring_runtime() -> io::Result<Runtime> {
        RuntimeBuilder::new().with_proactor(single_thread_ring()).build()
    }
}

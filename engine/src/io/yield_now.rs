//! Letting the runtime's other tasks run: a long piece of work on a single-threaded runtime
//! (a commit being planned, a victim being verified) steps aside so the IO of the others is
//! submitted and their answers go out before it continues.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Returns once every other task that is ready has run (the runtime polls this one again
/// at once, after them).
pub async fn yield_now() {
    YieldOnce(false).await;
}

/// `Pending` once, waking itself at once.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        context.waker().wake_by_ref();
        Poll::Pending
    }
}

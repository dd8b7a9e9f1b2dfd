//! Work moved off a shard's thread, so that the shard serves requests meanwhile: onto a thread
//! of compio's blocking pool, free to run on any core the process's main thread may use.
//!
//! The pool's threads are started by the thread that first needs one, and inherit its
//! affinity: a shard's, with `pin_threads`, is its own core, where the work would only take
//! turns with the shard. So each piece of work first widens its thread's affinity to the main
//! thread's (all of the process's cores, or those the operator pinned the process to).

/// The name the pool's threads take (they would otherwise keep the name of the thread that
/// started them, and their time would show as the shard's in `top -H` and in the bench).
const POOL_THREAD_NAME: &std::ffi::CStr = c"mailvault-pool";

/// Runs `work` on a thread of the blocking pool; `None` if it panicked there.
pub async fn elsewhere<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let widened = move || {
        widen_to_main_thread_cpus();
        let _ = rustix::thread::set_name(POOL_THREAD_NAME);
        work()
    };
    compio::runtime::spawn_blocking(widened).await.ok()
}

/// Lets this thread run wherever the process's main thread may. Failing that (a sandbox that
/// forbids it), it stays where it is: slower, never wrong.
fn widen_to_main_thread_cpus() {
    let main_thread = rustix::process::getpid();
    if let Ok(cpus) = rustix::thread::sched_getaffinity(Some(main_thread)) {
        let _ = rustix::thread::sched_setaffinity(None, &cpus);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

    use super::*;

    fn cpu_count(set: &CpuSet) -> usize {
        (0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).count()
    }

    /// From a thread pinned to one core (as a shard with `pin_threads`), the work runs on
    /// another thread that may use every core the main thread may: it fails if the pool's
    /// thread keeps the affinity it inherited (on a machine of more than one core).
    #[test]
    fn work_from_a_pinned_thread_runs_elsewhere_on_the_main_threads_cores() {
        let main_cpus = sched_getaffinity(Some(rustix::process::getpid())).unwrap();
        let first_cpu = (0..CpuSet::MAX_CPU).find(|&cpu| main_cpus.is_set(cpu)).unwrap();
        let (caller, worker, worker_cpus) = std::thread::spawn(move || {
            let mut pinned = CpuSet::new();
            pinned.set(first_cpu);
            sched_setaffinity(None, &pinned).unwrap();
            let runtime = compio::runtime::Runtime::new().unwrap();
            let (worker, cpus, name) = runtime
                .block_on(elsewhere(|| {
                    let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
                    (std::thread::current().id(), sched_getaffinity(None).unwrap(), name)
                }))
                .unwrap();
            (std::thread::current().id(), worker, (cpus, name))
        })
        .join()
        .unwrap();
        let (worker_cpus, worker_name) = worker_cpus;
        assert_ne!(caller, worker, "the work ran on the calling thread");
        assert_eq!(worker_name.trim_end(), "mailvault-pool");
        assert_eq!(cpu_count(&worker_cpus), cpu_count(&main_cpus), "the work's thread kept the pinned affinity");
    }

    #[test]
    fn work_that_panics_answers_none() {
        let runtime = compio::runtime::Runtime::new().unwrap();
        let answer: Option<()> = runtime.block_on(elsewhere(|| panic!("deliberately")));
        assert!(answer.is_none());
    }
}

//! Where the bench's threads run (`--pin`): shard `i` on core `i`, as a deployment pins them,
//! and the load generator (with fio, which it starts) on the cores left over.
//!
//! Unpinned, this VM's scheduler at times put the shard and the load generator on one core:
//! both then showed ~10% "waiting" and random reads fell back by a fifth (bench/README.md,
//! session 11). Pinned, that cannot happen, so rounds differ less.

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// Which cores the shards and the load generator get, or that the bench runs unpinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Every core the bench may use, in order (the process's affinity at start).
    cores: Vec<usize>,
    shards: usize,
    pinned: bool,
}

impl Placement {
    /// The placement for `shards` shards, pinned or not, over the cores this process may use.
    pub fn new(shards: usize, pinned: bool) -> std::io::Result<Self> {
        Ok(Self { cores: cores_in(&sched_getaffinity(None)?), shards, pinned })
    }

    /// No pinning: every thread goes where the scheduler puts it.
    pub fn unpinned(shards: usize) -> Self {
        Self { cores: Vec::new(), shards, pinned: false }
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Whether the engine pins its shards (`EngineConfig::pin_threads`: shard `i` on core
    /// `i % cores`).
    pub fn pins_shards(&self) -> bool {
        self.pinned
    }

    /// The core each shard is pinned to, as `EngineConfig::pin_threads` picks it: shard `i` on
    /// core `i % cores`, by number, so where the process may use only some cores (a cpuset of
    /// cores 4-7, say) that core can lie outside them.
    fn shard_cores(&self) -> Vec<usize> {
        (0..self.shards).map(|shard| shard % self.cores.len().max(1)).collect()
    }

    /// The cores no shard is pinned to, for the load generator; empty when unpinned or when
    /// the shards take every core (then the generator runs wherever the scheduler puts it).
    pub fn generator_cores(&self) -> Vec<usize> {
        if !self.pinned {
            return Vec::new();
        }
        let shard_cores = self.shard_cores();
        self.cores.iter().copied().filter(|core| !shard_cores.contains(core)).collect()
    }

    /// Moves the calling thread (the load generator's) to its cores, if it has any.
    pub fn pin_generator(&self) -> std::io::Result<()> {
        pin_current_thread(&self.generator_cores())
    }

    /// Runs `open` with the calling thread free to run on every core: threads it starts (the
    /// engine's shards) inherit that, and a shard pinning itself to a core its parent was not
    /// allowed on would fail. The generator's cores are restored afterwards.
    pub fn while_unpinned<T>(&self, open: impl FnOnce() -> T) -> std::io::Result<T> {
        pin_current_thread(if self.generator_cores().is_empty() { &[] } else { &self.cores })?;
        let opened = open();
        self.pin_generator()?;
        Ok(opened)
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        if !self.pinned {
            return "threads unpinned".to_owned();
        }
        let shard_cores = self.shard_cores();
        match self.generator_cores().as_slice() {
            [] => format!("shards pinned to cores {shard_cores:?}; load generator and fio unpinned (no core left)"),
            generator => {
                format!("shards pinned to cores {shard_cores:?}; load generator and fio on cores {generator:?}")
            }
        }
    }
}

/// The cores in `set`, in order.
fn cores_in(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::MAX_CPU).filter(|&core| set.is_set(core)).collect()
}

/// Restricts the calling thread to `cores` (no change for an empty list).
fn pin_current_thread(cores: &[usize]) -> std::io::Result<()> {
    if cores.is_empty() {
        return Ok(());
    }
    let mut set = CpuSet::new();
    for &core in cores {
        set.set(core);
    }
    sched_setaffinity(None, &set)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(cores: &[usize], shards: usize, pinned: bool) -> Placement {
        Placement { cores: cores.to_vec(), shards, pinned }
    }

    #[test]
    fn the_generator_gets_the_cores_after_the_shards() {
        assert_eq!(placement(&[0, 1, 2, 3], 1, true).generator_cores(), [1, 2, 3]);
        assert_eq!(placement(&[0, 1, 2, 3], 3, true).generator_cores(), [3]);
        // The engine pins by index: with cores 4-7 allowed, shard 0 asks for core 0.
        assert_eq!(placement(&[4, 5, 6, 7], 1, true).generator_cores(), [4, 5, 6, 7]);
        assert!(placement(&[0, 1], 2, true).generator_cores().is_empty(), "no core left");
        assert!(placement(&[0, 1], 4, true).generator_cores().is_empty(), "more shards than cores");
        assert!(placement(&[0, 1], 1, false).generator_cores().is_empty(), "unpinned");
    }

    #[test]
    fn the_description_names_each_side() {
        assert_eq!(placement(&[0, 1], 1, false).describe(), "threads unpinned");
        assert_eq!(
            placement(&[0, 1], 1, true).describe(),
            "shards pinned to cores [0]; load generator and fio on cores [1]"
        );
        assert_eq!(
            placement(&[0, 1], 3, true).describe(),
            "shards pinned to cores [0, 1, 0]; load generator and fio unpinned (no core left)"
        );
    }

    /// Pins this test's own thread and reads its affinity back.
    #[test]
    fn pinning_restricts_the_calling_thread_and_opening_widens_it_again() {
        let everything = Placement::new(1, true).expect("affinity");
        if everything.cores.len() < 2 {
            return; // nothing to place on one core
        }
        std::thread::spawn(move || {
            everything.pin_generator().expect("pin");
            let allowed = cores_in(&sched_getaffinity(None).expect("affinity"));
            assert_eq!(allowed, everything.generator_cores());
            let during = everything
                .while_unpinned(|| cores_in(&sched_getaffinity(None).expect("affinity")).len())
                .expect("widen");
            assert_eq!(during, everything.cores.len(), "every core while the engine opens");
            let after = cores_in(&sched_getaffinity(None).expect("affinity"));
            assert_eq!(after.len(), everything.cores.len() - 1);
        })
        .join()
        .expect("thread");
    }
}

//! mailvault benchmarks: engine load generators shared by the criterion benches
//! (`benches/engine.rs`) and the operator bench (`mailvault-bench engine-vs-fio`), and a small
//! fio runner to compare the engine with the raw disk in the same run, and the report (terminal
//! table, JSON, HTML with plots).

pub mod backup_bench;
pub mod compaction_bench;
pub mod compare;
pub mod delivery;
pub mod diagnostics;
pub mod disk_stats;
pub mod fio;
pub mod html_report;
pub mod page_cache;
pub mod placement;
pub mod profile;
pub mod recycle_bench;
pub mod report;
pub mod scrub_bench;
pub mod store;
pub mod workload;

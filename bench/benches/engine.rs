//! Criterion benches of the engine on the real disk: durable 4 KiB appends at 1, 64 and 256 in
//! flight (group commit), durable 64 KiB appends (bandwidth), and random 4 KiB fetches at 32 in
//! flight with the page cache evicted; each with 1 and 2 shards.
//!
//! The store lives in `<target>/bench-store` (the disk, not tmpfs) and is deleted afterwards.
//! Each iteration is one request in a closed loop of `k` concurrent requests, so criterion's
//! throughput is requests (or bytes) per second at that concurrency.

use std::fmt::Display;
use std::path::PathBuf;
use std::time::Duration;

use compio::runtime::Runtime;
use criterion::{BenchmarkId, Criterion, Throughput};
use mailvault_bench::page_cache::{self, Evictor};
use mailvault_bench::store::{BenchStore, hsm_token};
use mailvault_bench::workload::{self, ReadSet, Until};
use mailvault_hsm::Hsm;

const SHARD_COUNTS: [usize; 2] = [1, 2];
const SMALL_APPEND_CONCURRENCIES: [usize; 3] = [1, 64, 256];
const LARGE_APPEND_CONCURRENCY: usize = 64;
const READ_CONCURRENCY: usize = 32;
/// 256 MiB of 4 KiB messages to read from.
const READ_SET_MESSAGES: u64 = 65_536;
const EVICT_INTERVAL: Duration = Duration::from_millis(20);

fn or_die<T, E: Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error}"),
    }
}

fn store_directory() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("bench-store")
}

fn appends(criterion: &mut Criterion, runtime: &Runtime, hsm: &Hsm) {
    let small = workload::message_body(4 * 1024);
    let large = workload::message_body(64 * 1024);
    for shards in SHARD_COUNTS {
        let store = or_die(BenchStore::create(&store_directory(), shards, hsm), "create store");
        let mut group = criterion.benchmark_group(format!("append_4k/shards_{shards}"));
        group.throughput(Throughput::Elements(1));
        for concurrency in SMALL_APPEND_CONCURRENCIES {
            group.bench_function(BenchmarkId::new("in_flight", concurrency), |bencher| {
                bencher.iter_custom(|iterations| {
                    let load = workload::appends(
                        &store.engine,
                        &store.accounts,
                        &small,
                        concurrency,
                        Until::Operations(iterations),
                    );
                    or_die(runtime.block_on(load), "4 KiB appends").elapsed
                });
            });
        }
        group.finish();
        let mut group = criterion.benchmark_group(format!("append_64k/shards_{shards}"));
        group.throughput(Throughput::Bytes(large.len() as u64));
        group.bench_function(BenchmarkId::new("in_flight", LARGE_APPEND_CONCURRENCY), |bencher| {
            bencher.iter_custom(|iterations| {
                let load = workload::appends(
                    &store.engine,
                    &store.accounts,
                    &large,
                    LARGE_APPEND_CONCURRENCY,
                    Until::Operations(iterations),
                );
                or_die(runtime.block_on(load), "64 KiB appends").elapsed
            });
        });
        group.finish();
        or_die(store.close(), "delete store");
    }
}

fn random_reads(criterion: &mut Criterion, runtime: &Runtime, hsm: &Hsm) {
    let body = workload::message_body(4 * 1024);
    for shards in SHARD_COUNTS {
        let store = or_die(BenchStore::create(&store_directory(), shards, hsm), "create store");
        let fill = workload::appends(&store.engine, &store.accounts, &body, 256, Until::Operations(READ_SET_MESSAGES));
        or_die(runtime.block_on(fill), "fill the read set");
        let read_set = or_die(runtime.block_on(ReadSet::load(&store.engine, &store.accounts)), "list messages");
        or_die(page_cache::evict(store.directory()), "evict page cache");
        let evictor = or_die(Evictor::start(store.directory().to_owned(), EVICT_INTERVAL), "start evictor");
        let mut group = criterion.benchmark_group(format!("fetch_4k_random/shards_{shards}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("in_flight", READ_CONCURRENCY), |bencher| {
            bencher.iter_custom(|iterations| {
                let load =
                    workload::random_fetches(&store.engine, &read_set, READ_CONCURRENCY, Until::Operations(iterations));
                or_die(runtime.block_on(load), "random fetches").elapsed
            });
        });
        group.finish();
        drop(evictor);
        or_die(store.close(), "delete store");
    }
}

fn main() {
    let token = or_die(hsm_token(), "SoftHSM2 token");
    let runtime = or_die(workload::client_runtime(workload::CLIENT_WAKE_QUEUE_DEFAULT), "io_uring runtime");
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    appends(&mut criterion, &runtime, &token.hsm);
    random_reads(&mut criterion, &runtime, &token.hsm);
    criterion.final_summary();
}

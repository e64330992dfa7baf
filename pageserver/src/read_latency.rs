//! Point-read latency from each tier of the read path, measured on a timeline (no gRPC):
//! cold (the block is read by range from object storage), warm (the block cache's disk tier)
//! and hot (its memory tier). Not a test that can fail on speed:
//! it is ignored by default and run by `bench/read_tiers.sh`, which prints the numbers.
//!
//! `STRATA_BENCH_STORE_LATENCY_MS` adds that much latency to every object-store call, to
//! model a remote store; the bucket itself is a local directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_core::wal::WalRecord;
use strata_core::{Lsn, TimelineId};

use crate::config::PageserverConfig;
use crate::test_util::*;
use crate::timeline::Timeline;
use crate::timeline_tests::{flush_all, Env};

const KEYS: u64 = 200_000;
const VALUE_BYTES: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(tier: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "| {tier:<5} | {:>6} | {:>9.1} | {:>9.1} |",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
    );
}

async fn timed_get(t: &Timeline, key: &Bytes) -> Duration {
    let start = Instant::now();
    let got = t
        .get(std::slice::from_ref(key), Lsn::MAX, Lsn::ZERO)
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert!(got[0].is_some(), "{key:?} missing");
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run bench/read_tiers.sh"]
async fn point_read_latency_per_tier() {
    let env = Env::new();
    let latency = std::env::var("STRATA_BENCH_STORE_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let store = Arc::new(strata_faults::FaultyObjectStore::new(env.store.clone()));
    let data = tempfile::tempdir().unwrap();
    let conf = PageserverConfig {
        checkpoint_distance: 8 * 1024 * 1024,
        block_size: 32 * 1024,
        block_cache_bytes: 64 * 1024 * 1024,
        block_disk_cache_bytes: 256 * 1024 * 1024,
        ..test_config(data.path())
    };
    let t = env
        .attach_with(TimelineId::generate(), conf, store.clone())
        .await;
    let records: Vec<WalRecord> = (0..KEYS)
        .map(|i| {
            let value = format!("{i:0>width$}", width = VALUE_BYTES);
            record(i + 1, vec![put(key(i), value)])
        })
        .collect();
    let started = Instant::now();
    for chunk in records.chunks(1000) {
        t.ingest(chunk, chunk.last().unwrap().lsn).await.unwrap();
    }
    flush_all(&t).await.unwrap();
    let elapsed = started.elapsed();
    let status = t.status();
    let bytes = KEYS * (10 + VALUE_BYTES as u64);
    println!(
        "ingested {KEYS} keys ({:.1} MB of keys and values) in {:.2}s: {:.1} MB/s; {} layer files",
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        status.layer_count
    );
    store.set_latency(Duration::from_millis(latency));

    let sample: Vec<Bytes> = (0..500u64).map(|i| key(i * 7919 % KEYS)).collect();
    // Cold: no local file, nothing cached: the block comes from object storage by range.
    t.cache.evict_all().await;
    let mut cold = Vec::new();
    for k in &sample {
        t.cache.clear_blocks().await;
        cold.push(timed_get(&t, k).await);
    }
    // Warm: every block read once (so on the cache's disk tier), memory emptied each time.
    for k in &sample {
        timed_get(&t, k).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut warm = Vec::new();
    for k in &sample {
        t.cache.clear_memory();
        warm.push(timed_get(&t, k).await);
    }
    let mut hot = Vec::new();
    for k in &sample {
        timed_get(&t, k).await;
        hot.push(timed_get(&t, k).await);
    }
    println!("object-store latency added: {latency} ms");
    println!("| tier  | reads  | p50 (µs)  | p99 (µs)  |");
    println!("|-------|--------|-----------|-----------|");
    report("cold", cold);
    report("warm", warm);
    report("hot", hot);

    // Scan throughput from object storage, nothing cached.
    t.cache.clear_blocks().await;
    let started = Instant::now();
    let all = t.scan_all(b"", None, Lsn::MAX, None).await.unwrap();
    let elapsed = started.elapsed();
    let scanned: usize = all.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(all.len() as u64, KEYS);
    println!(
        "full scan: {} rows, {:.1} MB in {:.3}s: {:.1} MB/s",
        all.len(),
        scanned as f64 / 1e6,
        elapsed.as_secs_f64(),
        scanned as f64 / 1e6 / elapsed.as_secs_f64()
    );
    t.shutdown().await;
}

/// An incompressible value for key `i` (xorshift), so the data really is as large as it says.
fn big_value(i: u64, len: usize) -> Bytes {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// `STRATA_BENCH_GB` (default 1) GB of incompressible values read back exactly through a
/// 128 MiB local disk budget (layer files of 16 MiB) and a 16 MiB block cache (scaled down
/// for smaller runs): layers are evicted and downloaded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run bench/read_tiers.sh"]
async fn a_database_far_larger_than_the_cache_reads_back_exactly() {
    const VALUE: usize = 1000;
    let gb: f64 = std::env::var("STRATA_BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let keys = (gb * 1e9 / VALUE as f64) as u64;
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    // Sizes scale with the data (1 GB: 128 MiB of disk, 16 MiB of blocks, layer files of
    // 16 to 32 MiB), so a small run exercises the same paths. A miss downloads a whole file,
    // so the budget holds several.
    let scaled = |bytes: u64| ((bytes as f64 * gb.min(1.0)) as u64).max(256 * 1024);
    let budget = scaled(128 << 20);
    let conf = PageserverConfig {
        layer_cache_bytes: budget,
        block_cache_bytes: scaled(16 << 20),
        block_disk_cache_bytes: scaled(64 << 20),
        compaction_threshold: 10,
        compaction_target_size: scaled(16 << 20),
        image_creation_threshold: 3,
        checkpoint_distance: scaled(32 << 20),
        block_size: 32 * 1024,
        ..test_config(data.path())
    };
    let t = env.attach(TimelineId::generate(), conf).await;
    let started = Instant::now();
    let mut lsn = 0;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let records: Vec<WalRecord> = chunk
            .iter()
            .map(|&i| {
                lsn += 1;
                record(lsn, vec![put(key(i), big_value(i, VALUE))])
            })
            .collect();
        t.ingest(&records, Lsn(lsn)).await.unwrap();
    }
    flush_all(&t).await.unwrap();
    let ingest = started.elapsed();
    let total: u64 = crate::timeline::lock(&t.manifest)
        .layers
        .iter()
        .map(|l| l.size)
        .sum();
    println!(
        "ingested {keys} keys, {:.2} GB in {:.1}s ({:.1} MB/s); {} layer files, {:.2} GB in the bucket; \
         disk budget {:.1} MiB",
        keys as f64 * VALUE as f64 / 1e9,
        ingest.as_secs_f64(),
        keys as f64 * VALUE as f64 / 1e6 / ingest.as_secs_f64(),
        t.status().layer_count,
        total as f64 / 1e9,
        budget as f64 / 1048576.0
    );
    assert!(total > 6 * budget);

    let started = Instant::now();
    let mut rx = t
        .scan(Bytes::new(), None, Lsn::MAX, Lsn::ZERO, None)
        .await
        .unwrap();
    let mut next = 0u64;
    let mut sorted: Vec<u64> = (0..keys).collect();
    sorted.sort_by_key(|i| key(*i));
    while let Some(batch) = rx.recv().await {
        for (k, v) in batch.unwrap() {
            let i = sorted[next as usize];
            assert_eq!(k, key(i));
            assert!(v == big_value(i, VALUE), "value of {k:?} differs");
            next += 1;
        }
    }
    assert_eq!(next, keys);
    let scan = started.elapsed();
    let started = Instant::now();
    for n in 0..500u64 {
        let i = n.wrapping_mul(2_654_435_761) % keys;
        let got = t.get(&[key(i)], Lsn::MAX, Lsn::ZERO).await.unwrap();
        assert!(got[0].as_ref() == Some(&big_value(i, VALUE)), "get {i}");
    }
    let gets = started.elapsed();
    let stats = t.cache.stats();
    println!(
        "full scan verified {keys} rows in {:.1}s ({:.1} MB/s); 500 random gets verified in {:.1}s; \
         {stats:?}; local layer bytes at the end {} MiB",
        scan.as_secs_f64(),
        keys as f64 * VALUE as f64 / 1e6 / scan.as_secs_f64(),
        gets.as_secs_f64(),
        t.cache.resident_bytes() >> 20
    );
    assert!(stats.evictions > 0 && stats.remote_opens > 0);
    assert!(t.cache.resident_bytes() <= budget);
    t.shutdown().await;
}

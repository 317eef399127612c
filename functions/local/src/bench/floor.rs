//! `bench --floor`: what redb itself sustains on this machine's disk, the floor under the
//! embedded store. Durable commits of 1 KiB rows, one write per commit and 64 per commit (the
//! store's writer commits every job waiting in one group, so 64 in flight approach the
//! second), on a fresh database in the same temporary folder the bench's store uses.

use redb::{Database, TableDefinition};
use std::time::Instant;

const ROWS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("floor");
const ROW_BYTES: usize = 1024;
pub const BATCH: usize = 64;
/// Commits of one write each: enough for a stable rate in about a second here.
const SINGLE_COMMITS: usize = 3_000;
/// Commits of [`BATCH`] writes each.
const BATCHED_COMMITS: usize = 1_500;
const CACHE_BYTES: usize = 16 << 20;

/// Writes per second, one write per durable commit and [`BATCH`] per commit.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub single_per_s: f64,
    pub batched_per_s: f64,
}

/// Measures both rates on a database of its own (deleted after), off the async runtime.
pub async fn measure() -> Result<Floor, String> {
    tokio::task::spawn_blocking(measure_blocking)
        .await
        .map_err(|e| format!("the floor measurement stopped: {e}"))?
}

fn measure_blocking() -> Result<Floor, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // A small cache: the rows are written, never read, and the bench's peak RSS should stay
    // the store's.
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(dir.path().join("floor.redb"))
        .map_err(|e| e.to_string())?;
    // Distinct bytes per row, so nothing downstream can make the rows cheaper than real ones.
    let row: Vec<u8> = (0..ROW_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let mut next = 0u64;
    let mut rate = |commits: usize, per_commit: usize| -> Result<f64, String> {
        let started = Instant::now();
        for _ in 0..commits {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            {
                let mut table = txn.open_table(ROWS).map_err(|e| e.to_string())?;
                for _ in 0..per_commit {
                    let key = format!("{next:020}");
                    next += 1;
                    table
                        .insert(key.as_str(), row.as_slice())
                        .map_err(|e| e.to_string())?;
                }
            }
            txn.commit().map_err(|e| e.to_string())?;
        }
        Ok((commits * per_commit) as f64 / started.elapsed().as_secs_f64())
    };
    Ok(Floor {
        single_per_s: rate(SINGLE_COMMITS, 1)?,
        batched_per_s: rate(BATCHED_COMMITS, BATCH)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_rates_are_measured_and_batching_writes_more() {
        let floor = measure().await.unwrap();
        assert!(floor.single_per_s > 0.0, "{floor:?}");
        // 64 rows share one fsync: even on tmpfs the batched rate is the higher.
        assert!(floor.batched_per_s > floor.single_per_s, "{floor:?}");
    }
}

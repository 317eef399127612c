//! `bench --rate R`: an open-loop schedule. Job `n` is due at `n / R` seconds after the
//! start, whether or not the earlier ones have answered; at most `max_in_flight` run at
//! once, and a job that waits for a free slot is still timed from when it was due (the job
//! is handed that instant), so a slow server shows as latency, not as a lower offered rate.

use super::Sample;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Runs `count` jobs on the schedule; their samples in job order.
pub async fn run<F, Fut>(
    count: usize,
    per_second: u32,
    max_in_flight: usize,
    job: F,
) -> Result<Vec<Sample>, String>
where
    F: Fn(usize, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Sample, String>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let job = Arc::new(job);
    // Tokio's clock for the schedule (a test may pause it); the jobs get std instants.
    let start = tokio::time::Instant::now();
    let mut running = JoinSet::new();
    let mut all = Vec::with_capacity(count);
    for n in 0..count {
        let due = start + Duration::from_secs_f64(n as f64 / f64::from(per_second));
        tokio::time::sleep_until(due).await;
        let due = due.into_std();
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let job = Arc::clone(&job);
        running.spawn(async move {
            let sample = job(n, due).await;
            drop(slot);
            sample.map(|s| (n, s))
        });
        // Collect what has finished as we go, so a failure stops the schedule early.
        while let Some(done) = running.try_join_next() {
            all.push(done.map_err(|e| e.to_string())??);
        }
    }
    while let Some(done) = running.join_next().await {
        all.push(done.map_err(|e| e.to_string())??);
    }
    all.sort_by_key(|(n, _)| *n);
    Ok(all.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_job_delays_the_rest_and_their_wait_counts() {
        // 10 jobs at 1,000/s, one in flight, each taking 5 ms: job n is due at n ms but
        // starts at 5n ms, so its latency (answered - due) is 5(n+1) - n = 4n + 5 ms.
        let samples = run(10, 1000, 1, |_, due| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let due = tokio::time::Instant::from_std(due);
            Ok((String::new(), due.elapsed(), None))
        })
        .await
        .unwrap();
        let latencies: Vec<u128> = samples.iter().map(|(_, l, _)| l.as_millis()).collect();
        assert_eq!(latencies, (0..10).map(|n| 4 * n + 5).collect::<Vec<u128>>());
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_start_on_schedule_when_the_server_keeps_up() {
        let started = tokio::time::Instant::now().into_std();
        let samples = run(5, 100, 8, move |_, due| async move {
            Ok((String::new(), due - started, None))
        })
        .await
        .unwrap();
        let slots: Vec<u128> = samples.iter().map(|(_, d, _)| d.as_millis()).collect();
        assert_eq!(slots, [0, 10, 20, 30, 40]);
    }
}

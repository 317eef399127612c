//! Wires the engine to the embedded adapters and runs the background work: runner workers
//! and the timeout sweep.

use runledger::api::{RouteGroup, Router};
use runledger::auth::{Authenticator, JwtSettings};
use runledger::aws::backend::AwsBackend;
use runledger::bus::local::LocalEventBus;
use runledger::domain::clock::{Clock, SystemClock};
use runledger::domain::ids::{IdSource, UlidSource};
use runledger::engine::Engine;
use runledger::ports::StepRunner;
use runledger::queue::local::LocalWorkQueue;
use runledger::runner::HttpStepRunner;
use runledger::runner::target_guard::TargetPolicy;
use runledger::store::embedded::EmbeddedStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How often `--backend aws` takes in the table's stream into the event log.
const LOG_FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

pub struct RuntimeSettings {
    pub jwt: JwtSettings,
    pub workers: usize,
    pub sweep_interval: Duration,
    pub allow_private_targets: bool,
    /// Count finishes in analytics rollups (off only for `bench --analytics`'s comparison).
    pub analytics: bool,
}

/// Everything the local process runs.
pub struct LocalRuntime {
    pub router: Arc<Router>,
    pub engine: Engine,
    pub auth: Arc<Authenticator>,
    background: JoinSet<()>,
}

pub enum StoreLocation<'a> {
    File(&'a Path),
    Memory,
}

fn step_runner(allow_private: bool) -> Arc<dyn StepRunner> {
    Arc::new(HttpStepRunner::new(TargetPolicy { allow_private }))
}

async fn run_one(engine: &Engine, runner: &dyn StepRunner, execution_id: &str) {
    if let Err(e) = engine.run_execution(runner, execution_id).await {
        tracing::error!(execution_id = %execution_id, error = %e, "run failed");
    }
}

impl LocalRuntime {
    /// runledger over the embedded store, queue and bus.
    pub async fn start(
        location: StoreLocation<'_>,
        settings: RuntimeSettings,
    ) -> Result<Self, String> {
        let ids: Arc<dyn IdSource> = Arc::new(UlidSource::default());
        let store = match location {
            StoreLocation::File(path) => {
                EmbeddedStore::open(path, Arc::clone(&ids)).map_err(|e| {
                    format!(
                        "cannot open the database {}: {e} (is another runledger-local using it?)",
                        path.display()
                    )
                })?
            }
            StoreLocation::Memory => {
                EmbeddedStore::in_memory(Arc::clone(&ids)).map_err(|e| e.to_string())?
            }
        };
        let queue = Arc::new(LocalWorkQueue::new());
        let bus = Arc::new(LocalEventBus::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut engine = Engine::new(Arc::new(store), queue.clone(), bus, clock, ids);
        if !settings.analytics {
            engine = engine.without_analytics();
        }
        let mut runtime = Self::assemble(engine.clone(), settings.jwt)?;
        let recovered = engine
            .recover()
            .await
            .map_err(|e| format!("recovery failed: {e}"))?;
        if recovered > 0 {
            tracing::info!(recovered, "recovered executions left from the last run");
        }
        let runner = step_runner(settings.allow_private_targets);
        for _ in 0..settings.workers.max(1) {
            let (engine, queue, runner) = (engine.clone(), queue.clone(), Arc::clone(&runner));
            runtime.background.spawn(async move {
                loop {
                    let item = queue.next().await;
                    run_one(&engine, runner.as_ref(), &item.execution_id).await;
                }
            });
        }
        runtime.spawn_sweep(settings.sweep_interval);
        Ok(runtime)
    }

    /// runledger over DynamoDB, SQS and EventBridge: the same router and runner, with
    /// workers that poll the SQS work queues (high priority first).
    pub async fn start_aws(backend: AwsBackend, settings: RuntimeSettings) -> Result<Self, String> {
        let engine = backend.engine.clone();
        let mut runtime = Self::assemble(engine.clone(), settings.jwt)?;
        let runner = step_runner(settings.allow_private_targets);
        for _ in 0..settings.workers.max(1) {
            let (engine, queue, runner) = (
                engine.clone(),
                Arc::clone(&backend.queue),
                Arc::clone(&runner),
            );
            runtime.background.spawn(async move {
                loop {
                    let received = match queue.receive(1, 5).await {
                        Ok(received) => received,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot receive work");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                    for (item, receipt, queue_url) in received {
                        run_one(&engine, runner.as_ref(), &item.execution_id).await;
                        if let Err(e) = queue.delete(&queue_url, &receipt).await {
                            tracing::warn!(error = %e, "cannot delete a handled message; it will come again");
                        }
                    }
                }
            });
        }
        runtime.spawn_sweep(settings.sweep_interval);
        // No `log` function here: follow the table's stream to keep the event log current.
        let follower = engine.clone();
        runtime.background.spawn(async move {
            let mut ticks = tokio::time::interval(LOG_FOLLOW_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(e) = follower.sync_log().await {
                    tracing::warn!(error = %e, "following the event log failed");
                }
            }
        });
        Ok(runtime)
    }

    fn assemble(engine: Engine, jwt: JwtSettings) -> Result<Self, String> {
        let auth = Arc::new(Authenticator::new(jwt).map_err(|e| e.to_string())?);
        let router = Arc::new(Router::new(
            engine.clone(),
            Arc::clone(&auth),
            &RouteGroup::ALL,
        ));
        Ok(LocalRuntime {
            router,
            engine,
            auth,
            background: JoinSet::new(),
        })
    }

    fn spawn_sweep(&mut self, interval: Duration) {
        let sweeper = self.engine.clone();
        self.background.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match sweeper.sweep_timeouts().await {
                    Ok(0) => {}
                    Ok(ended) => tracing::info!(ended, "timed out overdue executions"),
                    Err(e) => tracing::warn!(error = %e, "timeout sweep failed"),
                }
            }
        });
    }

    /// Stops the workers and the sweep. Runs cut short end as `error` at the next start.
    pub async fn stop(mut self) {
        self.background.shutdown().await;
    }
}

/// Returns on the first SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

//! Wires the engine to the embedded adapters and runs the background work: runner workers
//! and the timeout sweep.

use runledger::api::{RouteGroup, Router};
use runledger::auth::{Authenticator, JwtSettings};
use runledger::bus::LocalEventBus;
use runledger::domain::clock::{Clock, SystemClock};
use runledger::domain::ids::{IdSource, UlidSource};
use runledger::engine::{Engine, StepRunner};
use runledger::queue::LocalWorkQueue;
use runledger::runner::HttpStepRunner;
use runledger::runner::target_guard::TargetPolicy;
use runledger::store::embedded::EmbeddedStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

pub struct RuntimeSettings {
    pub jwt: JwtSettings,
    pub workers: usize,
    pub sweep_interval: Duration,
    pub allow_private_targets: bool,
}

/// Everything the local process runs.
pub struct LocalRuntime {
    pub router: Arc<Router>,
    pub engine: Engine,
    pub queue: Arc<LocalWorkQueue>,
    pub bus: Arc<LocalEventBus>,
    pub auth: Arc<Authenticator>,
    background: JoinSet<()>,
}

pub enum StoreLocation<'a> {
    File(&'a Path),
    Memory,
}

impl LocalRuntime {
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
        let engine = Engine::new(Arc::new(store), queue.clone(), bus.clone(), clock, ids);
        let auth = Arc::new(Authenticator::new(settings.jwt).map_err(|e| e.to_string())?);
        let router = Arc::new(Router::new(
            engine.clone(),
            Arc::clone(&auth),
            &RouteGroup::ALL,
        ));

        let recovered = engine
            .recover()
            .await
            .map_err(|e| format!("recovery failed: {e}"))?;
        if recovered > 0 {
            tracing::info!(recovered, "recovered executions left from the last run");
        }
        let runner: Arc<dyn StepRunner> = Arc::new(HttpStepRunner::new(TargetPolicy {
            allow_private: settings.allow_private_targets,
        }));
        let mut background = JoinSet::new();
        for _ in 0..settings.workers.max(1) {
            let (engine, queue, runner) = (engine.clone(), queue.clone(), Arc::clone(&runner));
            background.spawn(async move {
                loop {
                    let item = queue.next().await;
                    if let Err(e) = engine.run_execution(runner.as_ref(), &item.execution_id).await {
                        tracing::error!(execution_id = %item.execution_id, error = %e, "run failed");
                    }
                }
            });
        }
        let sweeper = engine.clone();
        let interval = settings.sweep_interval;
        background.spawn(async move {
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
        Ok(LocalRuntime {
            router,
            engine,
            queue,
            bus,
            auth,
            background,
        })
    }

    /// Stops the workers and the sweep. Runs cut short end as `error` at the next start.
    pub async fn stop(mut self) {
        self.background.shutdown().await;
    }
}

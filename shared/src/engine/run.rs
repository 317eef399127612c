//! The built-in runner's use case: run a queued execution's `http` steps in order.

use super::{Engine, EngineError};
use crate::domain::catalog::RunnerKind;
use crate::domain::events::WorkItem;
use crate::domain::execution::{ExecutionStatus, StepReport, StepStatus, Transition};
use crate::domain::step_outcome::StepVerdict;
use crate::domain::workflow::{RUNNER_ACTOR, Reporter};
use crate::ports::StepRunner;
use std::collections::BTreeMap;

impl Engine {
    /// Runs a queued built-in execution to its end. Safe to call twice for the same item
    /// (at-least-once delivery): only the call that moves it to `running` runs it.
    pub async fn run_execution(
        &self,
        runner: &dyn StepRunner,
        id: &str,
    ) -> Result<(), EngineError> {
        let claim = Transition::new(
            ExecutionStatus::Running,
            RUNNER_ACTOR,
            Some("runner picked it up"),
        );
        let execution = match self.transition(id, claim).await {
            Ok(execution) => execution,
            // Already claimed, cancelled or finished: nothing to do for this delivery.
            Err(EngineError::InvalidTransition(_)) | Err(EngineError::NotFound { .. }) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match self
            .run_steps(runner, id, &execution.config.variables)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let reason = format!("the runner could not finish: {e}");
                let error = Transition::new(ExecutionStatus::Error, RUNNER_ACTOR, Some(&reason));
                match self.transition(id, error).await {
                    Ok(_) | Err(EngineError::InvalidTransition(_)) => Ok(()),
                    Err(second) => Err(second),
                }
            }
        }
    }

    async fn run_steps(
        &self,
        runner: &dyn StepRunner,
        id: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let definition = self.store.get_definition(id).await?.ok_or_else(|| {
            EngineError::Unavailable(format!("no step definitions kept for {id}"))
        })?;
        let mut variables = definition.variables.clone();
        variables.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (index, step) in definition.steps.iter().enumerate() {
            // Cancellation and timeouts are honoured between steps.
            let current = self.store.get_execution(id).await?;
            if current.is_none_or(|e| e.status.is_terminal()) {
                return Ok(());
            }
            let outcome = runner.run_step(step, &variables).await;
            let passed = outcome.verdict == StepVerdict::Passed;
            let report = StepReport {
                index: index as u32,
                status: match outcome.verdict {
                    StepVerdict::Passed => StepStatus::Passed,
                    StepVerdict::Failed => StepStatus::Failed,
                    StepVerdict::Error => StepStatus::Error,
                },
                name: None,
                started_at: Some(outcome.started_at),
                finished_at: Some(outcome.finished_at),
                duration_ms: Some(outcome.duration_ms),
                message: outcome.message,
                output: outcome.output,
            };
            match self
                .record_steps(id, vec![report], Reporter::BuiltinRunner, None)
                .await
            {
                Ok(_) => {}
                // Ended meanwhile (cancelled, timed out): stop quietly.
                Err(EngineError::InvalidTransition(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
            if passed {
                variables.extend(outcome.captures);
            } else if !step.continue_on_failure {
                break;
            }
        }
        match self.complete_as(id, Reporter::BuiltinRunner, None).await {
            Ok(_) | Err(EngineError::InvalidTransition(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// After a restart: queued built-in work goes back on the queue, and built-in runs that
    /// were interrupted end as `error` (an automatic retry follows where configured).
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let mut requeue = Vec::new();
        let mut recovered = 0;
        for execution in self.store.active(100_000).await? {
            if execution.runner != Some(RunnerKind::Builtin) {
                continue;
            }
            match execution.status {
                ExecutionStatus::Queued => requeue.push(WorkItem {
                    execution_id: execution.id.clone(),
                    priority: execution.priority,
                }),
                ExecutionStatus::Running => {
                    let reason = "the runner was interrupted by a restart";
                    let t = Transition::new(ExecutionStatus::Error, RUNNER_ACTOR, Some(reason));
                    match self.transition(&execution.id, t).await {
                        Ok(_) | Err(EngineError::InvalidTransition(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                _ => continue,
            }
            recovered += 1;
        }
        if !requeue.is_empty() {
            self.queue.enqueue(&requeue).await?;
        }
        Ok(recovered)
    }
}

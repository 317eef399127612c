//! Exports: any case or suite execution, imported or run here, as a test report.

use super::{Caller, Engine, EngineError};
use crate::domain::execution::{Execution, ExecutionKind, StepResult};
use crate::ports::{ChildrenQuery, StepsQuery};
use crate::report::{ImportedRun, MAX_ATTEMPTS, export};
use std::collections::HashMap;

/// Children or steps read per store request while exporting.
const EXPORT_PAGE: usize = 500;

impl Engine {
    /// Execution `id` as a run of tests (see [`export::run_of`]), for the caller who owns it.
    pub async fn export(&self, caller: &Caller, id: &str) -> Result<ImportedRun, EngineError> {
        let root = self.get_execution(caller, id).await?;
        let attempts = match root.kind {
            ExecutionKind::Case => self.attempts_up_to(&root).await?,
            ExecutionKind::Suite => self.every_child(id).await?,
        };
        let mut failures = HashMap::new();
        for execution in attempts.iter().filter(|e| export::needs_failure(e)) {
            if let Some(step) = self.first_failed_step(execution).await? {
                failures.insert(execution.id.clone(), step);
            }
        }
        Ok(export::run_of(&root, &attempts, &failures))
    }

    /// The attempts of a case that led to `last` (its `retry_of` chain), oldest first.
    async fn attempts_up_to(&self, last: &Execution) -> Result<Vec<Execution>, EngineError> {
        let mut chain = vec![last.clone()];
        while chain.len() < MAX_ATTEMPTS {
            let Some(earlier) = chain.last().and_then(|e| e.retry_of.clone()) else {
                break;
            };
            match self.store.get_execution(&earlier).await? {
                Some(execution) => chain.push(execution),
                None => break,
            }
        }
        chain.reverse();
        Ok(chain)
    }

    /// Every child of suite `id`, every attempt, in suite order.
    async fn every_child(&self, id: &str) -> Result<Vec<Execution>, EngineError> {
        let mut children = Vec::new();
        let mut after = None;
        loop {
            let query = ChildrenQuery {
                parent_id: id.to_owned(),
                limit: EXPORT_PAGE,
                after,
            };
            let page = self.store.list_children(&query).await?;
            children.extend(page.items);
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => return Ok(children),
            }
        }
    }

    /// The first failed or errored step of `execution`: from its record when the steps are
    /// inline, else read page by page until one is found.
    async fn first_failed_step(
        &self,
        execution: &Execution,
    ) -> Result<Option<StepResult>, EngineError> {
        if !execution.is_partitioned() {
            return Ok(export::first_failure(&execution.steps).cloned());
        }
        let mut after_index = None;
        loop {
            let query = StepsQuery {
                execution_id: execution.id.clone(),
                limit: EXPORT_PAGE,
                after_index,
            };
            let steps = self.store.list_steps(&query).await?;
            if let Some(step) = export::first_failure(&steps) {
                return Ok(Some(step.clone()));
            }
            match steps.last() {
                Some(last) if steps.len() == EXPORT_PAGE => after_index = Some(last.index),
                _ => return Ok(None),
            }
        }
    }
}

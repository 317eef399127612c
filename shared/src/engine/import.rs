//! Imports: a test run that something else ran, recorded from its report (see
//! [`crate::report::import`]).

use super::executions::{StartRequest, Started, validate_start};
use super::{Caller, Engine, EngineError};
use crate::domain::catalog::{TestCase, TestSuite};
use crate::domain::execution::{Execution, ExecutionConfig};
use crate::domain::time::Timestamp;
use crate::domain::workflow::{DefinitionSource, UnitOfWork};
use crate::ports::CatalogRecord;
use crate::report::import::{
    DEFAULT_SUITE_NAME, ImportedExecutions, MAX_IMPORT_TESTS, case_id, executions_of, grown_suite,
    new_case, new_suite, suite_id,
};
use crate::report::{ImportedRun, ReportFormat, RunCounts};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;

/// Quarantines read a page at a time while an import looks for the ones in force.
const QUARANTINE_PAGE: usize = 200;

/// An import request, after parsing.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub report: Bytes,
    pub format: ReportFormat,
    /// The suite to record the run under (default: the report's own name, else `imported`).
    pub suite: Option<String>,
    pub environment: Option<String>,
    pub tags: Vec<String>,
    pub idempotency_key: Option<String>,
}

/// What an import recorded: the suite execution, and the report's counts and warnings.
#[derive(Debug, Clone)]
pub struct Imported {
    pub execution: Execution,
    pub created: bool,
    pub counts: RunCounts,
    pub warnings: Vec<String>,
}

impl Engine {
    /// Records the run a report tells as one finished suite execution, registering its tests
    /// (and the suite) in the catalog the first time they are seen. The executions are one
    /// change set: all of them or none.
    pub async fn import(
        &self,
        caller: &Caller,
        request: ImportRequest,
    ) -> Result<Imported, EngineError> {
        let config = ExecutionConfig {
            environment: request.environment.clone(),
            tags: request.tags.clone(),
            ..ExecutionConfig::default()
        };
        validate_start(&StartRequest {
            config: config.clone(),
            idempotency_key: request.idempotency_key.clone(),
        })?;
        let (format, report) = (request.format, request.report.clone());
        // Reading 10 MiB of XML is CPU work: off the async workers.
        let run = tokio::task::spawn_blocking(move || format.read(&report))
            .await
            .map_err(|e| EngineError::Unavailable(format!("reading the report: {e}")))?
            .map_err(|e| EngineError::InvalidReport(e.to_string()))?;
        if run.tests.len() > MAX_IMPORT_TESTS {
            return Err(EngineError::InvalidReport(format!(
                "the report holds {} tests; an import takes at most {MAX_IMPORT_TESTS}",
                run.tests.len()
            )));
        }
        let name = request
            .suite
            .clone()
            .or_else(|| run.name.clone())
            .unwrap_or_else(|| DEFAULT_SUITE_NAME.to_owned());
        let (suite, cases) = self.register(caller, &run, &name).await?;
        let now = self.clock.now();
        let quarantined = self.quarantined_if_failing(&caller.user, &run, now).await?;
        let ids = Arc::clone(&self.ids);
        let ImportedExecutions {
            suite: root,
            attempts,
        } = executions_of(
            &run,
            &suite,
            &cases,
            &quarantined,
            &caller.user,
            &config,
            now,
            || ids.execution_id(),
        );
        let cases: Vec<Arc<TestCase>> = cases.into_iter().map(Arc::new).collect();
        let root_id = root.id.clone();
        let reason = format!("imported from a {} report", format_name(request.format));
        let record = move |unit: &mut UnitOfWork<'_>, actor: &str| {
            for (execution, case) in &attempts {
                let definition = DefinitionSource::Snapshot(Arc::clone(&cases[*case]));
                unit.record_finished(execution.clone(), Some(definition), actor, &reason)?;
            }
            unit.record_finished(root.clone(), None, actor, &reason)
        };
        let Started { execution, created } = self
            .start_once(caller, root_id, request.idempotency_key, record)
            .await?;
        Ok(Imported {
            execution,
            created,
            counts: run.counts(),
            warnings: run.warnings,
        })
    }

    /// The ids of `owner`'s test cases in quarantine at `now` (the import's cases are all
    /// `owner`'s), read only when a test of `run` ended failing: there is nothing to mute
    /// otherwise. One listing, since an owner has few quarantines and a report many tests.
    async fn quarantined_if_failing(
        &self,
        owner: &str,
        run: &ImportedRun,
        now: Timestamp,
    ) -> Result<HashSet<String>, EngineError> {
        let mut quarantined = HashSet::new();
        let failing = run.tests.iter().any(|test| {
            test.attempts
                .last()
                .is_some_and(|attempt| attempt.status.is_failure())
        });
        if !failing {
            return Ok(quarantined);
        }
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_quarantines(Some(owner), QUARANTINE_PAGE, after.as_deref())
                .await?;
            quarantined.extend(
                page.items
                    .into_iter()
                    .filter(|q| q.is_active(now))
                    .map(|q| q.test_case_id),
            );
            match page.next_cursor {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(quarantined)
    }

    /// The catalog entries a run is recorded under: each test's case (`cases[i]` for
    /// `run.tests[i]`) and the suite, registered where they are new, the suite grown by the
    /// cases it lacks.
    async fn register(
        &self,
        caller: &Caller,
        run: &ImportedRun,
        name: &str,
    ) -> Result<(TestSuite, Vec<TestCase>), EngineError> {
        let now = self.clock.now();
        let owner = caller.user.as_str();
        let ids: Vec<String> = run.tests.iter().map(|test| case_id(owner, test)).collect();
        // One batch read for the lot (a report names each test once).
        let stored = self.store.get_entries::<TestCase>(&ids).await?;
        let mut cases = Vec::with_capacity(run.tests.len());
        let mut missing = Vec::new();
        for ((test, id), stored) in run.tests.iter().zip(ids).zip(stored) {
            let case = match stored {
                Some(case) if case.owner == owner => case,
                Some(_) => {
                    return Err(EngineError::Unavailable(format!(
                        "test case id {id} derived for {owner} belongs to someone else"
                    )));
                }
                None => {
                    let case = new_case(id, owner, test, now);
                    missing.push(CatalogRecord::of(&case)?);
                    case
                }
            };
            cases.push(case);
        }
        let case_ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
        let id = suite_id(owner, name);
        let suite = match self.store.get_entry::<TestSuite>(&id).await? {
            Some(suite) if suite.owner == owner => {
                self.store.insert_missing_catalog(&missing).await?;
                match grown_suite(&suite, &case_ids, now) {
                    Some(grown) => {
                        // Another import growing it meanwhile is no failure: this run's
                        // cases are registered, and the next import adds what is missing.
                        match self.store.replace_entry(&grown, suite.version).await {
                            Ok(()) => grown,
                            Err(crate::domain::errors::StoreError::Conflict(_)) => suite,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    None => suite,
                }
            }
            Some(_) => {
                return Err(EngineError::Unavailable(format!(
                    "test suite id {id} derived for {owner} belongs to someone else"
                )));
            }
            None => {
                // A report names each test once (its reruns are attempts), so no case twice.
                let suite = new_suite(id, owner, name, case_ids, now);
                missing.push(CatalogRecord::of(&suite)?);
                self.store.insert_missing_catalog(&missing).await?;
                // Another import may have registered it first: take what is stored.
                self.store
                    .get_entry::<TestSuite>(&suite.id)
                    .await?
                    .unwrap_or(suite)
            }
        };
        Ok((suite, cases))
    }
}

fn format_name(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Junit => "JUnit XML",
        ReportFormat::Ctrf => "CTRF",
    }
}

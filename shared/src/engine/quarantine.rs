//! Quarantine use cases: put a test case in quarantine for a while, lift it, list what is in
//! quarantine, and read a test case's audit history. The unit of work reads a case's
//! quarantine when one of its executions fails inside a suite (see `ChildSlot::muted`).

use super::{Caller, Engine, EngineError};
use crate::domain::catalog::TestCase;
use crate::domain::events::{CaseEvent, CaseEventKind};
use crate::domain::quarantine::{CaseAction, CaseHistoryEntry, Quarantine, check_request};
use crate::domain::time::Timestamp;
use crate::ports::Page;

/// A quarantine request: why, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRequest {
    pub reason: String,
    pub until: Timestamp,
}

impl Engine {
    /// Quarantines a visible test case until `request.until` (at most 30 days ahead),
    /// replacing any quarantine it had; recorded in its history and announced.
    pub async fn quarantine(
        &self,
        caller: &Caller,
        test_case_id: &str,
        request: QuarantineRequest,
    ) -> Result<Quarantine, EngineError> {
        let case = self.get_entry::<TestCase>(caller, test_case_id).await?;
        let now = self.clock.now();
        check_request(&request.reason, request.until, now).map_err(EngineError::Validation)?;
        let quarantine = Quarantine {
            test_case_id: case.id.clone(),
            owner: case.owner.clone(),
            reason: request.reason.trim().to_owned(),
            until: request.until,
            by: caller.actor(),
            at: now,
        };
        let entry = CaseHistoryEntry {
            action: CaseAction::Quarantined,
            at: now,
            actor: caller.actor(),
            reason: Some(quarantine.reason.clone()),
            until: Some(quarantine.until),
        };
        self.store.put_quarantine(&quarantine, &entry).await?;
        self.announce(&case, &entry).await;
        Ok(quarantine)
    }

    /// Lifts a visible test case's quarantine; `false` when it had none (nothing recorded).
    pub async fn release(&self, caller: &Caller, test_case_id: &str) -> Result<bool, EngineError> {
        let case = self.get_entry::<TestCase>(caller, test_case_id).await?;
        let entry = CaseHistoryEntry {
            action: CaseAction::Released,
            at: self.clock.now(),
            actor: caller.actor(),
            reason: None,
            until: None,
        };
        let lifted = self.store.lift_quarantine(&case.id, &entry).await?;
        if lifted {
            self.announce(&case, &entry).await;
        }
        Ok(lifted)
    }

    /// A visible test case's quarantine, if it is in force now.
    pub async fn quarantine_of(
        &self,
        caller: &Caller,
        test_case_id: &str,
    ) -> Result<Option<Quarantine>, EngineError> {
        let case = self.get_entry::<TestCase>(caller, test_case_id).await?;
        let now = self.clock.now();
        Ok(self
            .store
            .get_quarantine(&case.id)
            .await?
            .filter(|q| q.is_active(now)))
    }

    /// The quarantines in force of the caller's test cases (everyone's for an administrator),
    /// by test case id, after `after`. A page may hold fewer than `limit` when some lapsed.
    pub async fn list_quarantined(
        &self,
        caller: &Caller,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page<Quarantine>, EngineError> {
        let scope = caller.scope();
        let now = self.clock.now();
        let mut page = self
            .store
            .list_quarantines(scope.as_deref(), limit, after)
            .await?;
        page.items.retain(|q| q.is_active(now));
        Ok(page)
    }

    /// A visible test case's audit history, oldest first.
    pub async fn case_history(
        &self,
        caller: &Caller,
        test_case_id: &str,
    ) -> Result<Vec<CaseHistoryEntry>, EngineError> {
        let case = self.get_entry::<TestCase>(caller, test_case_id).await?;
        Ok(self.store.case_history(&case.id).await?)
    }

    /// Publishes what happened to a test case. The history is the record: a bus that fails
    /// is logged, not an error for the caller whose change is already durable.
    async fn announce(&self, case: &TestCase, entry: &CaseHistoryEntry) {
        let kind = match entry.action {
            CaseAction::Quarantined => CaseEventKind::TestCaseQuarantined,
            CaseAction::Released => CaseEventKind::TestCaseReleased,
        };
        let event = CaseEvent {
            kind,
            test_case_id: case.id.clone(),
            owner: case.owner.clone(),
            actor: entry.actor.clone(),
            reason: entry.reason.clone(),
            until: entry.until,
            at: entry.at,
        };
        if let Err(error) = self.bus.publish_case_events(&[event]).await {
            tracing::warn!(test_case_id = %case.id, %error, "a test case event was not published");
        }
    }
}

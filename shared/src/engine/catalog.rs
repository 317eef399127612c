//! Test case and test suite use cases.

use super::{Caller, Engine, EngineError};
use crate::domain::catalog::{
    DEFAULT_MAX_PARALLEL, TestCase, TestCaseInput, TestSuite, TestSuiteInput,
};
use crate::domain::ids::{TEST_CASE_PREFIX, is_well_formed};
use crate::domain::validation::ValidationErrors;
use crate::ports::{CatalogQuery, Page};

impl Engine {
    pub async fn create_test_case(
        &self,
        caller: &Caller,
        input: TestCaseInput,
    ) -> Result<TestCase, EngineError> {
        input.validate().map_err(EngineError::Validation)?;
        let now = self.clock.now();
        let case = TestCase {
            id: self.ids.test_case_id(),
            owner: caller.user.clone(),
            name: input.name,
            description: input.description,
            tags: input.tags,
            variables: input.variables,
            timeout_s: input.timeout_s,
            steps: input.steps,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        self.store.insert_test_case(&case).await?;
        Ok(case)
    }

    pub async fn get_test_case(&self, caller: &Caller, id: &str) -> Result<TestCase, EngineError> {
        match self.store.get_test_case(id).await? {
            Some(case) if caller.can_see(&case.owner) => Ok(case),
            _ => Err(EngineError::not_found("test case", id)),
        }
    }

    pub async fn list_test_cases(
        &self,
        caller: &Caller,
        tag: Option<String>,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<TestCase>, EngineError> {
        let query = CatalogQuery {
            owner: caller.scope(),
            tag,
            limit,
            after,
        };
        Ok(self.store.list_test_cases(&query).await?)
    }

    pub async fn replace_test_case(
        &self,
        caller: &Caller,
        id: &str,
        input: TestCaseInput,
    ) -> Result<TestCase, EngineError> {
        input.validate().map_err(EngineError::Validation)?;
        let current = self.get_test_case(caller, id).await?;
        let case = TestCase {
            name: input.name,
            description: input.description,
            tags: input.tags,
            variables: input.variables,
            timeout_s: input.timeout_s,
            steps: input.steps,
            updated_at: self.clock.now(),
            version: current.version + 1,
            ..current.clone()
        };
        self.store.replace_test_case(&case, current.version).await?;
        Ok(case)
    }

    pub async fn delete_test_case(&self, caller: &Caller, id: &str) -> Result<(), EngineError> {
        self.get_test_case(caller, id).await?;
        self.store.delete_test_case(id).await?;
        Ok(())
    }

    pub async fn create_test_suite(
        &self,
        caller: &Caller,
        input: TestSuiteInput,
    ) -> Result<TestSuite, EngineError> {
        self.check_suite_input(caller, &input).await?;
        let now = self.clock.now();
        let suite = TestSuite {
            id: self.ids.test_suite_id(),
            owner: caller.user.clone(),
            name: input.name,
            description: input.description,
            test_case_ids: input.test_case_ids,
            mode: input.mode,
            max_parallel: input.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL),
            fail_fast: input.fail_fast,
            tags: input.tags,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        self.store.insert_test_suite(&suite).await?;
        Ok(suite)
    }

    pub async fn get_test_suite(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<TestSuite, EngineError> {
        match self.store.get_test_suite(id).await? {
            Some(suite) if caller.can_see(&suite.owner) => Ok(suite),
            _ => Err(EngineError::not_found("test suite", id)),
        }
    }

    pub async fn list_test_suites(
        &self,
        caller: &Caller,
        tag: Option<String>,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<TestSuite>, EngineError> {
        let query = CatalogQuery {
            owner: caller.scope(),
            tag,
            limit,
            after,
        };
        Ok(self.store.list_test_suites(&query).await?)
    }

    pub async fn replace_test_suite(
        &self,
        caller: &Caller,
        id: &str,
        input: TestSuiteInput,
    ) -> Result<TestSuite, EngineError> {
        let current = self.get_test_suite(caller, id).await?;
        self.check_suite_input(caller, &input).await?;
        let suite = TestSuite {
            name: input.name,
            description: input.description,
            test_case_ids: input.test_case_ids,
            mode: input.mode,
            max_parallel: input.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL),
            fail_fast: input.fail_fast,
            tags: input.tags,
            updated_at: self.clock.now(),
            version: current.version + 1,
            ..current.clone()
        };
        self.store
            .replace_test_suite(&suite, current.version)
            .await?;
        Ok(suite)
    }

    pub async fn delete_test_suite(&self, caller: &Caller, id: &str) -> Result<(), EngineError> {
        self.get_test_suite(caller, id).await?;
        self.store.delete_test_suite(id).await?;
        Ok(())
    }

    /// Every listed case must exist and be visible to the caller.
    async fn check_suite_input(
        &self,
        caller: &Caller,
        input: &TestSuiteInput,
    ) -> Result<(), EngineError> {
        input.validate().map_err(EngineError::Validation)?;
        let mut errors = ValidationErrors::default();
        for (i, id) in input.test_case_ids.iter().enumerate() {
            let visible = is_well_formed(id, TEST_CASE_PREFIX)
                && self
                    .store
                    .get_test_case(id)
                    .await?
                    .is_some_and(|c| caller.can_see(&c.owner));
            if !visible {
                errors.add(
                    format!("test_case_ids[{i}]"),
                    format!("no test case with id {id}"),
                );
            }
        }
        errors.into_result().map_err(EngineError::Validation)
    }
}

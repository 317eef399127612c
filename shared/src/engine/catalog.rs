//! Catalog use cases: create, read, list, replace and delete any kind of catalog entry (test
//! cases, test suites), one path for every kind: `engine.create_entry::<TestCase>(..)`.

use super::{Caller, Engine, EngineError};
use crate::domain::catalog::CatalogEntry;
use crate::domain::ids::is_well_formed;
use crate::domain::validation::ValidationErrors;
use crate::ports::{CatalogHeader, CatalogQuery, Page, StepCount};

impl Engine {
    /// Validates `input` (its own checks, then the entries it names) and stores a new entry
    /// owned by the caller.
    pub async fn create_entry<T: CatalogEntry>(
        &self,
        caller: &Caller,
        input: T::Input,
    ) -> Result<T, EngineError> {
        T::validate(&input).map_err(EngineError::Validation)?;
        self.check_references::<T>(caller, &input).await?;
        let id = self.ids.catalog_id(T::KIND);
        let entry = T::create(id, caller.user.clone(), input, self.clock.now());
        self.store.insert_entry(&entry).await?;
        Ok(entry)
    }

    /// The entry, if it exists and the caller may see it.
    pub async fn get_entry<T: CatalogEntry>(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<T, EngineError> {
        match self.store.get_entry::<T>(id).await? {
            Some(entry) if caller.can_see(entry.owner()) => Ok(entry),
            _ => Err(EngineError::not_found(T::KIND.name(), id)),
        }
    }

    /// The caller's entries (everyone's for an administrator), oldest first.
    pub async fn list_entries<T: CatalogEntry>(
        &self,
        caller: &Caller,
        tag: Option<String>,
        limit: usize,
        after: Option<String>,
    ) -> Result<Page<T>, EngineError> {
        let query = CatalogQuery {
            owner: caller.scope(),
            tag,
            limit,
            after,
        };
        Ok(self.store.list_entries(&query).await?)
    }

    /// Replaces a visible entry's content (the next version); a concurrent replace makes one
    /// of the two a `concurrent_modification` conflict.
    pub async fn replace_entry<T: CatalogEntry>(
        &self,
        caller: &Caller,
        id: &str,
        input: T::Input,
    ) -> Result<T, EngineError> {
        T::validate(&input).map_err(EngineError::Validation)?;
        let current = self.get_entry::<T>(caller, id).await?;
        self.check_references::<T>(caller, &input).await?;
        let entry = current.replaced(input, self.clock.now());
        self.store.replace_entry(&entry, current.version()).await?;
        Ok(entry)
    }

    pub async fn delete_entry<T: CatalogEntry>(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), EngineError> {
        self.get_entry::<T>(caller, id).await?;
        self.store.delete_entry::<T>(id).await?;
        Ok(())
    }

    /// Every entry the input names must exist and be visible to the caller, and what they
    /// hold together must fit (see [`CatalogEntry::check_referenced_steps`]).
    async fn check_references<T: CatalogEntry>(
        &self,
        caller: &Caller,
        input: &T::Input,
    ) -> Result<(), EngineError> {
        let mut errors = ValidationErrors::default();
        let mut steps = 0u64;
        for reference in T::references(input) {
            let kind = reference.kind;
            let document = match is_well_formed(&reference.id, kind.id_prefix()) {
                true => self.store.get_catalog(kind, &reference.id).await?,
                false => None,
            };
            let visible = match &document {
                Some(document) => caller.can_see(&CatalogHeader::read(document.as_bytes())?.owner),
                None => false,
            };
            match document {
                Some(document) if visible => {
                    steps += StepCount::read(document.as_bytes())?.steps();
                }
                _ => errors.add(
                    reference.field,
                    format!("no {} with id {}", kind.name(), reference.id),
                ),
            }
        }
        errors.into_result().map_err(EngineError::Validation)?;
        T::check_referenced_steps(steps).map_err(EngineError::Validation)
    }
}

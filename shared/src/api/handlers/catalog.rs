//! Test cases and test suites: create, list, get, replace, delete. One definition serves
//! every kind of catalog entry (`catalog_handlers!` below); each kind only names its path,
//! entry and input types, so a new kind is one more invocation and five route lines.

use crate::api::ApiState;
use crate::api::extract::{Call, EntryId, NoQuery, StrictJson, StrictQuery};
use crate::api::openapi::{Conflict, NotFound};
use crate::api::params::{LISTING_PAGE, cursor, encode_cursor, limit};
use crate::api::problem::Problem;
use crate::api::wire::Page;
use crate::domain::catalog::{
    CatalogEntry, CatalogKind, TestCase, TestCaseInput, TestSuite, TestSuiteInput,
};
use crate::engine::Caller;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Deserialize;
use utoipa::IntoParams;

/// The query of a catalog listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogParams {
    /// Only entries with this tag.
    tag: Option<String>,
    #[param(schema_with = crate::api::params::listing_limit_schema)]
    limit: Option<String>,
    /// `next_cursor` of the previous page (a cursor this listing did not hand out is `400`).
    cursor: Option<String>,
}

/// The collection's path segment, which also names its cursors.
fn collection(kind: CatalogKind) -> &'static str {
    match kind {
        CatalogKind::TestCase => "test-cases",
        CatalogKind::TestSuite => "test-suites",
    }
}

async fn create<T: CatalogEntry>(
    api: ApiState,
    caller: Caller,
    input: T::Input,
) -> Result<Response, Problem> {
    let entry = api.engine.create_entry::<T>(&caller, input).await?;
    let location = format!(
        "{}/{}/{}",
        crate::api::API_PREFIX,
        collection(T::KIND),
        entry.id()
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(entry),
    )
        .into_response())
}

async fn list<T: CatalogEntry>(
    api: ApiState,
    caller: Caller,
    query: CatalogParams,
) -> Result<Json<Page<T>>, Problem> {
    let kind = collection(T::KIND);
    let found = api
        .engine
        .list_entries::<T>(
            &caller,
            query.tag,
            limit(query.limit.as_deref(), LISTING_PAGE)?,
            cursor(query.cursor.as_deref(), kind)?,
        )
        .await?;
    Ok(Json(Page {
        items: found.items,
        next_cursor: found.next_cursor.map(|p| encode_cursor(kind, &p)),
    }))
}

macro_rules! catalog_handlers {
    ($module:ident, $path:literal, $entry:ty, $input:ty, $what:literal) => {
        pub mod $module {
            use super::*;

            #[utoipa::path(post, path = $path, tag = "catalog", summary = concat!("Create a ", $what), request_body = $input,
                        responses((status = 201, description = "Created", body = $entry,
                                   headers(("Location" = String, description = "The new entry's path"))),
                                  Conflict))]
            pub async fn create(
                Call { api, caller, .. }: Call,
                StrictJson(input): StrictJson<$input>,
            ) -> Result<Response, Problem> {
                super::create::<$entry>(api, caller, input).await
            }

            #[utoipa::path(get, path = $path, tag = "catalog", summary = concat!("List ", $what, "s"), params(CatalogParams),
                        responses((status = 200, description = "A page", body = Page<$entry>)))]
            pub async fn list(
                Call { api, caller, query: StrictQuery(query), .. }: Call<StrictQuery<CatalogParams>>,
            ) -> Result<Json<Page<$entry>>, Problem> {
                super::list::<$entry>(api, caller, query).await
            }

            #[utoipa::path(get, path = concat!($path, "/{id}"), tag = "catalog", summary = concat!("Get a ", $what),
                        params(("id" = String, Path)),
                        responses((status = 200, description = "The entry", body = $entry), NotFound))]
            pub async fn get(
                Call { api, caller, id: EntryId(id, ..), .. }: Call<NoQuery, EntryId<$entry>>,
            ) -> Result<Json<$entry>, Problem> {
                Ok(Json(api.engine.get_entry::<$entry>(&caller, &id).await?))
            }

            #[utoipa::path(put, path = concat!($path, "/{id}"), tag = "catalog", summary = concat!("Replace a ", $what, " (bumps version)"),
                        params(("id" = String, Path)), request_body = $input,
                        responses((status = 200, description = "The new version", body = $entry), NotFound, Conflict))]
            pub async fn replace(
                Call { api, caller, id: EntryId(id, ..), .. }: Call<NoQuery, EntryId<$entry>>,
                StrictJson(input): StrictJson<$input>,
            ) -> Result<Json<$entry>, Problem> {
                Ok(Json(
                    api.engine
                        .replace_entry::<$entry>(&caller, &id, input)
                        .await?,
                ))
            }

            #[utoipa::path(delete, path = concat!($path, "/{id}"), tag = "catalog", summary = concat!("Delete a ", $what),
                        params(("id" = String, Path)),
                        responses((status = 204, description = "Deleted"), NotFound))]
            pub async fn delete(
                Call { api, caller, id: EntryId(id, ..), .. }: Call<NoQuery, EntryId<$entry>>,
            ) -> Result<StatusCode, Problem> {
                api.engine.delete_entry::<$entry>(&caller, &id).await?;
                Ok(StatusCode::NO_CONTENT)
            }
        }
    };
}

catalog_handlers!(
    test_cases,
    "/test-cases",
    TestCase,
    TestCaseInput,
    "test case"
);
catalog_handlers!(
    test_suites,
    "/test-suites",
    TestSuite,
    TestSuiteInput,
    "test suite"
);

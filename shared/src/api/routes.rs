//! The route table: every endpoint of the API, one line each, with the group that owns it.
//! The router and the OpenAPI document are both built from this table, so neither can list
//! a route the other lacks. A new endpoint is a handler plus one line here.

use super::handlers::catalog::{test_cases, test_suites};
use super::handlers::{executions, health, steps};
use super::{ApiState, RouteGroup};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

fn table() -> Vec<(RouteGroup, UtoipaMethodRouter<ApiState>)> {
    use RouteGroup::*;
    vec![
        (Health, routes!(health::health)),
        (Health, routes!(health::openapi)),
        (Catalog, routes!(test_cases::create)),
        (Catalog, routes!(test_cases::list)),
        (Catalog, routes!(test_cases::get)),
        (Catalog, routes!(test_cases::replace)),
        (Catalog, routes!(test_cases::delete)),
        (Catalog, routes!(test_suites::create)),
        (Catalog, routes!(test_suites::list)),
        (Catalog, routes!(test_suites::get)),
        (Catalog, routes!(test_suites::replace)),
        (Catalog, routes!(test_suites::delete)),
        (Start, routes!(executions::start_case)),
        (Start, routes!(executions::start_suite)),
        (Start, routes!(executions::retry)),
        (Status, routes!(executions::list)),
        (Status, routes!(executions::get)),
        (Status, routes!(executions::children)),
        (Status, routes!(executions::history)),
        (Status, routes!(steps::list)),
        (StepReport, routes!(steps::report)),
        (StepReport, routes!(executions::complete)),
        (Finalize, routes!(executions::cancel)),
    ]
}

/// The routes of `groups`, under the API prefix, with their OpenAPI operations.
pub fn mounted(groups: &[RouteGroup]) -> OpenApiRouter<ApiState> {
    let api = table()
        .into_iter()
        .filter(|(group, _)| groups.contains(group))
        .fold(OpenApiRouter::new(), |api, (_, route)| api.routes(route));
    OpenApiRouter::new().nest(super::API_PREFIX, api)
}

/// One operation of the API: what the deployment template must route, and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub method: http::Method,
    /// The full path, with `{id}` for the id segment.
    pub path: String,
    pub group: RouteGroup,
}

/// Every operation of every group, in table order.
pub fn operations() -> Vec<Operation> {
    RouteGroup::ALL
        .into_iter()
        .flat_map(|group| {
            let (_, document) = mounted(&[group]).split_for_parts();
            document
                .paths
                .paths
                .into_iter()
                .flat_map(move |(path, item)| {
                    super::openapi::methods(&item)
                        .into_iter()
                        .map(move |method| Operation {
                            method,
                            path: path.clone(),
                            group,
                        })
                })
        })
        .collect()
}

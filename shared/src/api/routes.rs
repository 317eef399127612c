//! The route table: every endpoint of the API, one line each, with the group that owns it.
//! The router and the OpenAPI document are both built from this table, so neither can list
//! a route the other lacks. A new endpoint is a handler plus one line here.

use super::handlers::catalog::{test_cases, test_suites};
use super::handlers::{analytics, events, executions, health, imports, quarantine, reports, steps};
use super::{ApiState, RouteGroup};
use axum::handler::Handler;
use axum::routing::MethodRouter;
use utoipa::openapi::HttpMethod;
use utoipa_axum::PathItemExt;
use utoipa_axum::router::OpenApiRouter;

/// Expands the table into what serves ([`served`]: each handler at the path and methods its
/// `#[utoipa::path]` names) and what documents ([`documented`]: the same handlers through
/// utoipa-axum, which adds their operations and schemas). Two functions over one list, so
/// that only the document's generation builds operations: the Lambda bootstraps serve the
/// committed document and link none of that code.
macro_rules! route_table {
    ($($group:ident => $module:ident :: $handler:ident,)*) => {
        /// The routes of the groups in `GROUPS` (a [`RouteGroup::set`]). The test is on a
        /// constant, so a binary that serves some groups compiles no handler of the others.
        fn served<const GROUPS: u16>() -> Vec<Route> {
            use RouteGroup::*;
            let mut routes = Vec::new();
            $(if GROUPS & $group.bit() != 0 {
                routes.push(pastey::paste! {
                    Route::new(
                        $group,
                        <$module::[<__path_ $handler>] as utoipa::Path>::path(),
                        <$module::[<__path_ $handler>] as utoipa::Path>::methods(),
                        $module::$handler,
                    )
                });
            })*
            routes
        }

        /// The routes of `groups`, under the API prefix, with their OpenAPI operations.
        pub(super) fn documented(groups: &[RouteGroup]) -> OpenApiRouter<ApiState> {
            use RouteGroup::*;
            let mut api = OpenApiRouter::new();
            $(if groups.contains(&$group) {
                api = api.routes(utoipa_axum::routes!($module::$handler));
            })*
            OpenApiRouter::new().nest(super::API_PREFIX, api)
        }
    };
}

route_table! {
    Health => health::health,
    Health => health::openapi,
    Catalog => test_cases::create,
    Catalog => test_cases::list,
    Catalog => test_cases::get,
    Catalog => test_cases::replace,
    Catalog => test_cases::delete,
    Catalog => quarantine::put,
    Catalog => quarantine::delete,
    Catalog => quarantine::history,
    Catalog => quarantine::list,
    Catalog => test_suites::create,
    Catalog => test_suites::list,
    Catalog => test_suites::get,
    Catalog => test_suites::replace,
    Catalog => test_suites::delete,
    Start => executions::start_case,
    Start => executions::start_suite,
    Start => executions::retry,
    Start => imports::import,
    Status => executions::list,
    Status => executions::get,
    Status => executions::children,
    Status => executions::history,
    Events => events::events,
    Status => reports::export,
    Status => steps::list,
    StepReport => steps::report,
    StepReport => executions::complete,
    Finalize => executions::cancel,
    Analytics => analytics::test_case,
    Analytics => analytics::test_suite,
    Analytics => analytics::flaky,
}

/// One line of the table, ready to mount.
struct Route {
    group: RouteGroup,
    path: String,
    methods: Vec<HttpMethod>,
    router: MethodRouter<ApiState>,
}

impl Route {
    fn new<H, T>(group: RouteGroup, path: String, methods: Vec<HttpMethod>, handler: H) -> Self
    where
        H: Handler<T, ApiState>,
        T: 'static,
    {
        let router = methods.iter().fold(MethodRouter::new(), |router, method| {
            router.on(method.to_method_filter(), handler.clone())
        });
        Route {
            group,
            path,
            methods,
            router,
        }
    }
}

const EVERY_GROUP: u16 = RouteGroup::set(&RouteGroup::ALL);

/// The routes of `groups`, under the API prefix.
pub fn mounted(groups: &[RouteGroup]) -> axum::Router<ApiState> {
    nested(
        served::<EVERY_GROUP>()
            .into_iter()
            .filter(|route| groups.contains(&route.group)),
    )
}

/// The routes of the groups in `GROUPS`, under the API prefix.
pub fn mounted_set<const GROUPS: u16>() -> axum::Router<ApiState> {
    nested(served::<GROUPS>().into_iter())
}

fn nested(routes: impl Iterator<Item = Route>) -> axum::Router<ApiState> {
    let api = routes.fold(axum::Router::new(), |api, route| {
        api.route(&route.path, route.router)
    });
    axum::Router::new().nest(super::API_PREFIX, api)
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
    served::<EVERY_GROUP>()
        .into_iter()
        .flat_map(|route| {
            route.methods.into_iter().map(move |method| Operation {
                method: http_method(&method),
                path: format!("{}{}", super::API_PREFIX, route.path),
                group: route.group,
            })
        })
        .collect()
}

fn http_method(method: &HttpMethod) -> http::Method {
    match method {
        HttpMethod::Get => http::Method::GET,
        HttpMethod::Put => http::Method::PUT,
        HttpMethod::Post => http::Method::POST,
        HttpMethod::Delete => http::Method::DELETE,
        HttpMethod::Options => http::Method::OPTIONS,
        HttpMethod::Head => http::Method::HEAD,
        HttpMethod::Patch => http::Method::PATCH,
        HttpMethod::Trace => http::Method::TRACE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_time_set_serves_exactly_its_groups() {
        use RouteGroup::{Events, Health, Status};
        const STATUS_AND_HEALTH: u16 = RouteGroup::set(&[Status, Events, Health]);
        let key = |route: &Route| {
            let methods: Vec<http::Method> = route.methods.iter().map(http_method).collect();
            (route.group, route.path.clone(), methods)
        };
        let by_set: Vec<_> = served::<STATUS_AND_HEALTH>().iter().map(key).collect();
        let filtered: Vec<_> = served::<EVERY_GROUP>()
            .iter()
            .filter(|route| [Status, Events, Health].contains(&route.group))
            .map(key)
            .collect();
        assert_eq!(by_set.len(), 9);
        assert_eq!(by_set, filtered);
    }
}

//! What each Lambda function owns: the route groups it mounts on the one router, and the
//! other events it is invoked with. `runledger::lambda` builds a function from its spec
//! and refuses, with an error naming what arrived, any event its spec does not list.

use super::http::HttpEdge;
use super::table_stream::{Logged, log_batch};
use crate::api::RouteGroup;
use crate::engine::Engine;
use crate::ports::StepRunner;
use crate::runner::HttpStepRunner;
use crate::runner::target_guard::TargetPolicy;
use crate::settings::Vars;
use crate::store::dynamo::DynamoStore;
use aws_config::SdkConfig;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A kind of invocation a function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// API Gateway (HTTP API payload 2.0, REST API payload 1.0) and Lambda Function URL
    /// requests, for the function's `routes`.
    Http,
    /// SQS batches from the work queues (one per priority): built-in executions to run.
    WorkQueue,
    /// SQS batches from the step-report queue: step results from high-volume reporters.
    StepReportQueue,
    /// runledger's own events from its EventBridge bus (`source: runledger`); an
    /// `Execution Finished` or `Suite Finished` event reconciles the execution (settles its
    /// suite, adds a rollup contribution left due); others are ignored.
    DomainEvents,
    /// The timeout sweep's schedule: an EventBridge `Scheduled Event` from `aws.events`.
    SweepSchedule,
    /// EventBridge Scheduler (or a rule with constant input) starting a test case or suite:
    /// `{"test_suite_id" | "test_case_id", "owner", "config"?, "idempotency_key"?}`.
    ScheduledStart,
    /// Batches of the table's DynamoDB stream records (every change of an item, before and
    /// after): the event log is written from them.
    TableStream,
    /// Function URL requests answered with a streamed response (`InvokeMode:
    /// RESPONSE_STREAM`): Server-Sent Events, which API Gateway cannot carry.
    StreamingHttp,
}

#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    pub name: &'static str,
    /// The route groups the function mounts and its HTTP edge's constructor, for the
    /// functions that take [`Trigger::Http`] (written with [`http_routes!`]).
    pub http: Option<HttpRoutes>,
    pub triggers: &'static [Trigger],
    /// One line for people: what invokes the function.
    pub summary: &'static str,
    /// Builds the runner of work items' `http` steps, for the function that takes work items.
    /// A constructor here rather than a flag: a function binary links only what its own spec
    /// names, so the HTTP client for steps is in the runner's bootstrap alone.
    pub step_runner: Option<fn(TargetPolicy) -> Arc<dyn StepRunner>>,
    /// Logs a batch of the table's stream records, for the function that takes them
    /// ([`Trigger::TableStream`]). A function for the same reason: only that function's
    /// bootstrap decodes stream records.
    pub table_stream: Option<TableStreamConsumer>,
}

/// See [`FunctionSpec::table_stream`].
pub type TableStreamConsumer = for<'a> fn(&'a DynamoStore, Value) -> Logged<'a>;

/// What a function serves over HTTP.
#[derive(Debug, Clone, Copy)]
pub struct HttpRoutes {
    pub groups: &'static [RouteGroup],
    /// Builds the edge at cold start: the JWT secret, the authenticator, the router over
    /// `groups`. A constructor for the same reason as `step_runner`: only the functions that
    /// take HTTP link the router, the SSM client and lambda_http, and each links only its
    /// own groups' handlers.
    pub edge: HttpEdgeConstructor,
}

/// See [`HttpRoutes::edge`].
pub type HttpEdgeConstructor = for<'a> fn(&'a SdkConfig, Vars<'a>, Engine) -> EdgeBuilt<'a>;
/// The cold start's future of an [`HttpEdgeConstructor`].
pub type EdgeBuilt<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<dyn HttpEdge>, lambda_runtime::Error>> + 'a>>;

/// `Some(HttpRoutes)` for these groups, with the edge built for exactly them.
macro_rules! http_routes {
    ($($group:ident),+) => {
        Some(HttpRoutes {
            groups: &[$(RouteGroup::$group),+],
            edge: http_edge::<{ RouteGroup::set(&[$(RouteGroup::$group),+]) }>,
        })
    };
}

/// [`http_routes!`] for a function whose responses stream.
macro_rules! streaming_routes {
    ($($group:ident),+) => {
        Some(HttpRoutes {
            groups: &[$(RouteGroup::$group),+],
            edge: streaming_edge::<{ RouteGroup::set(&[$(RouteGroup::$group),+]) }>,
        })
    };
}

fn streaming_edge<'a, const GROUPS: u16>(
    sdk: &'a SdkConfig,
    var: Vars<'a>,
    engine: Engine,
) -> EdgeBuilt<'a> {
    Box::pin(super::http::streaming_edge::<GROUPS>(sdk, var, engine))
}

fn http_edge<'a, const GROUPS: u16>(
    sdk: &'a SdkConfig,
    var: Vars<'a>,
    engine: Engine,
) -> EdgeBuilt<'a> {
    Box::pin(super::http::edge::<GROUPS>(sdk, var, engine))
}

fn http_step_runner(policy: TargetPolicy) -> Arc<dyn StepRunner> {
    Arc::new(HttpStepRunner::new(policy))
}

impl FunctionSpec {
    pub fn accepts(&self, trigger: Trigger) -> bool {
        self.triggers.contains(&trigger)
    }

    /// The route groups the function mounts (none if it takes no HTTP).
    pub fn routes(&self) -> &'static [RouteGroup] {
        self.http.map_or(&[], |http| http.groups)
    }
}

pub const START: FunctionSpec = FunctionSpec {
    name: "start",
    http: http_routes!(Start),
    triggers: &[Trigger::Http, Trigger::ScheduledStart],
    summary: "API Gateway (start, retry) and EventBridge Scheduler",
    step_runner: None,
    table_stream: None,
};
pub const STATUS: FunctionSpec = FunctionSpec {
    name: "status",
    http: http_routes!(Status, Events, Analytics, Health, Dashboard),
    triggers: &[Trigger::Http],
    summary: "API Gateway (every GET on executions, analytics, health; the dashboard)",
    step_runner: None,
    table_stream: None,
};
pub const STEP_REPORT: FunctionSpec = FunctionSpec {
    name: "step-report",
    http: http_routes!(StepReport),
    triggers: &[Trigger::Http, Trigger::StepReportQueue],
    summary: "API Gateway (steps, complete) and SQS step batches",
    step_runner: None,
    table_stream: None,
};
pub const FINALIZE: FunctionSpec = FunctionSpec {
    name: "finalize",
    http: http_routes!(Finalize),
    triggers: &[Trigger::Http, Trigger::DomainEvents, Trigger::SweepSchedule],
    summary: "API Gateway (cancel), EventBridge events, the timeout sweep schedule",
    step_runner: None,
    table_stream: None,
};
pub const RUNNER: FunctionSpec = FunctionSpec {
    name: "runner",
    http: None,
    triggers: &[Trigger::WorkQueue],
    summary: "SQS work queues (one per priority)",
    step_runner: Some(http_step_runner),
    table_stream: None,
};
pub const CATALOG: FunctionSpec = FunctionSpec {
    name: "catalog",
    http: http_routes!(Catalog),
    triggers: &[Trigger::Http],
    summary: "API Gateway (test cases, test suites)",
    step_runner: None,
    table_stream: None,
};

pub const STREAM: FunctionSpec = FunctionSpec {
    name: "stream",
    http: streaming_routes!(Events),
    triggers: &[Trigger::StreamingHttp],
    summary: "a Function URL streaming responses (Server-Sent Events of the event log)",
    step_runner: None,
    table_stream: None,
};

pub const LOG: FunctionSpec = FunctionSpec {
    name: "log",
    http: None,
    triggers: &[Trigger::TableStream],
    summary: "the table's DynamoDB stream (writes the event log)",
    step_runner: None,
    table_stream: Some(log_batch),
};

/// Every Lambda function, in the order the architecture lists them.
pub const ALL: [FunctionSpec; 8] = [
    START,
    STATUS,
    STEP_REPORT,
    FINALIZE,
    RUNNER,
    CATALOG,
    LOG,
    STREAM,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_group_but_the_demo_has_exactly_one_function_behind_the_api() {
        let api = || ALL.into_iter().filter(|f| f.accepts(Trigger::Http));
        for group in RouteGroup::ALL {
            let owners = api().filter(|f| f.routes().contains(&group)).count();
            let expected = usize::from(group != RouteGroup::Demo);
            assert_eq!(owners, expected, "{group:?}");
        }
        // What streams serves only what the API serves too (the long poll of the same log).
        for function in ALL.iter().filter(|f| f.accepts(Trigger::StreamingHttp)) {
            assert_eq!(function.routes(), [RouteGroup::Events], "{}", function.name);
        }
    }

    #[test]
    fn a_function_has_a_step_runner_exactly_when_it_takes_work_items() {
        for function in ALL {
            assert_eq!(
                function.step_runner.is_some(),
                function.accepts(Trigger::WorkQueue),
                "{}",
                function.name
            );
        }
    }

    #[test]
    fn a_function_logs_the_table_stream_exactly_when_it_takes_it() {
        for function in ALL {
            assert_eq!(
                function.table_stream.is_some(),
                function.accepts(Trigger::TableStream),
                "{}",
                function.name
            );
        }
    }

    #[test]
    fn a_function_mounts_routes_exactly_when_it_takes_http() {
        for function in ALL {
            assert_eq!(
                function.accepts(Trigger::Http) || function.accepts(Trigger::StreamingHttp),
                !function.routes().is_empty(),
                "{}",
                function.name
            );
            assert!(
                !(function.accepts(Trigger::Http) && function.accepts(Trigger::StreamingHttp)),
                "{} answers HTTP both buffered and streamed",
                function.name
            );
        }
        // Each queue and stream has one consumer.
        for trigger in [
            Trigger::WorkQueue,
            Trigger::StepReportQueue,
            Trigger::DomainEvents,
            Trigger::SweepSchedule,
            Trigger::ScheduledStart,
            Trigger::TableStream,
            Trigger::StreamingHttp,
        ] {
            assert_eq!(ALL.iter().filter(|f| f.accepts(trigger)).count(), 1);
        }
    }
}

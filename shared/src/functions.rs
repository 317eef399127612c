//! What each Lambda function owns. The functions mount these route groups on the one router;
//! their AWS wiring (DynamoDB, SQS, EventBridge adapters) comes with the AWS adapters, and
//! until then a function binary says so and exits instead of pretending to serve.

use crate::api::RouteGroup;

pub struct FunctionSpec {
    pub name: &'static str,
    pub routes: &'static [RouteGroup],
    pub triggers: &'static str,
}

pub const START: FunctionSpec = FunctionSpec {
    name: "start",
    routes: &[RouteGroup::Start],
    triggers: "API Gateway (start, retry) and EventBridge Scheduler",
};
pub const STATUS: FunctionSpec = FunctionSpec {
    name: "status",
    routes: &[RouteGroup::Status, RouteGroup::Health],
    triggers: "API Gateway (every GET on executions, health)",
};
pub const STEP_REPORT: FunctionSpec = FunctionSpec {
    name: "step-report",
    routes: &[RouteGroup::StepReport],
    triggers: "API Gateway (steps, complete) and SQS step batches",
};
pub const FINALIZE: FunctionSpec = FunctionSpec {
    name: "finalize",
    routes: &[RouteGroup::Finalize],
    triggers: "API Gateway (cancel), EventBridge events, the timeout sweep schedule",
};
pub const RUNNER: FunctionSpec = FunctionSpec {
    name: "runner",
    routes: &[],
    triggers: "SQS work queues (one per priority)",
};
pub const CATALOG: FunctionSpec = FunctionSpec {
    name: "catalog",
    routes: &[RouteGroup::Catalog],
    triggers: "API Gateway (test cases, test suites)",
};

/// The entry point of a function whose AWS adapters are not built yet.
pub fn awaiting_aws_adapters(spec: &FunctionSpec) -> std::process::ExitCode {
    eprintln!(
        "runledger function `{}` ({}; routes {:?}) needs the AWS adapters, which are not built yet. \
         Run everything locally with `runledger-local serve`.",
        spec.name, spec.triggers, spec.routes
    );
    std::process::ExitCode::FAILURE
}

//! SDK interceptors for tests against the emulator: a network's round trip, and faults
//! injected into chosen requests (as a crash between two writes would leave the second undone).
//! Request counting is the product's own (`runledger::aws::metrics::RequestCounter`).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Asks the emulator to answer each request only after a network's round trip (header read
/// by `scripts/moto_server.py`): against moto, which answers at once, concurrent clients then
/// show whether they wait for each other as they would against AWS.
#[derive(Debug, Clone, Copy)]
pub struct RoundTrip(pub Duration);

impl Intercept for RoundTrip {
    fn name(&self) -> &'static str {
        "RoundTrip"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-emulated-round-trip-ms", self.0.as_millis().to_string());
        Ok(())
    }
}

/// Fails, before it is sent, every request of one operation whose body holds a given text,
/// while armed; counts the requests it failed. Clones share the switch.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    armed: Arc<Mutex<Option<(String, String)>>>,
    failed: Arc<Mutex<u64>>,
}

impl Faults {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails `operation` requests (e.g. `UpdateItem`) whose JSON body contains `containing`.
    pub fn fail(&self, operation: &str, containing: &str) {
        *self.armed.lock().expect("faults") = Some((operation.into(), containing.into()));
    }

    /// Stops failing requests.
    pub fn heal(&self) {
        *self.armed.lock().expect("faults") = None;
    }

    /// How many requests were failed so far.
    pub fn failed(&self) -> u64 {
        *self.failed.lock().expect("faults")
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "Faults"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some((operation, containing)) = self.armed.lock().expect("faults").clone() else {
            return Ok(());
        };
        let matches = cfg.load::<Metadata>().map(Metadata::name) == Some(operation.as_str())
            && context
                .request()
                .body()
                .bytes()
                .is_some_and(|body| String::from_utf8_lossy(body).contains(&containing));
        if !matches {
            return Ok(());
        }
        *self.failed.lock().expect("faults") += 1;
        Err(format!("injected fault: {operation} containing {containing:?}").into())
    }
}

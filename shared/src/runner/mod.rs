//! The built-in HTTP step runner: templating, expectations, SSRF protection and the
//! request itself.

pub mod expect;
pub mod limits;
pub mod target_guard;
pub mod template;

mod http_step;

pub use http_step::HttpStepRunner;

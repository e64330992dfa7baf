//! The Strata control plane: which branches and endpoints exist, where their data lives, and
//! the proxy that routes each PostgreSQL connection to its endpoint's compute.
//!
//! Its state is one manifest in object storage (`control/manifest/<version>`), so a deployment
//! can be rebuilt from the bucket alone. The `main` branch is created with the deployment;
//! branches are created, restored and deleted through [`ControlPlane`] (served over gRPC by
//! [`ControlService`]), and computes are started on demand when a connection names their
//! endpoint.

mod error;
mod manifest;
mod object_store_url;
mod plane;
mod point;
mod proxy;
mod service;

pub use error::ControlError;
pub use manifest::{Branch, ControlManifest, EndpointSpec, MAIN_BRANCH};
pub use object_store_url::open_object_store;
pub use plane::{Compute, ComputeLauncher, ControlPlane, PlaneConfig};
pub use point::Point;
pub use proxy::{serve_proxy, Route, RouteError, Router};
pub use service::{serve_control, ControlService};

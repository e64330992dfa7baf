//! The Strata control plane: which branches exist and where their data lives.
//!
//! Its state is one manifest in object storage (`control/manifest/<version>`), so a deployment
//! can be rebuilt from the bucket alone. This first version knows branches (the `main` branch is
//! created with the deployment); endpoints, the proxy and the autoscaler come later.

mod error;
mod manifest;
mod object_store_url;
mod proxy;

pub use error::ControlError;
pub use manifest::{Branch, ControlManifest, MAIN_BRANCH};
pub use object_store_url::open_object_store;
pub use proxy::{serve_proxy, RouteError, Router};

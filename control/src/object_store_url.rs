use std::path::Path;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

use crate::ControlError;

/// Opens the object store a deployment keeps its data in.
///
/// - `s3://bucket[/prefix]`: Amazon S3 or any S3-compatible store, configured by the standard
///   `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
///   `AWS_REGION`, `AWS_ENDPOINT_URL`, …). An `http://` endpoint is allowed.
/// - `file:///path` or a plain path: a directory on the local filesystem (created if missing).
pub fn open_object_store(url: &str) -> Result<Arc<dyn ObjectStore>, ControlError> {
    let invalid = |reason: String| ControlError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket name".into()));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok();
        if endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
        {
            builder = builder.with_allow_http(true);
        }
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        let store = builder.build().map_err(|e| invalid(e.to_string()))?;
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        });
    }
    let path = match url.strip_prefix("file://") {
        Some(p) => p,
        None if url.contains("://") => return Err(invalid("expected s3:// or file://".into())),
        None => url,
    };
    std::fs::create_dir_all(path).map_err(|e| invalid(format!("cannot create {path}: {e}")))?;
    let store =
        LocalFileSystem::new_with_prefix(Path::new(path)).map_err(|e| invalid(e.to_string()))?;
    Ok(Arc::new(store))
}

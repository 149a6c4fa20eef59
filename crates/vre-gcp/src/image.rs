//! Where machine images come from: a name or family in an image project, or
//! a `.tar.gz` in Cloud Storage imported with `images.insert` (as KubeNow's
//! images were distributed).

/// The `https://storage.googleapis.com/BUCKET/OBJECT` URL `rawDisk.source`
/// needs, from either that form or `gs://BUCKET/OBJECT`; `None` for anything
/// outside Cloud Storage.
pub fn storage_url(source: &str) -> Option<String> {
    const HTTPS: &str = "https://storage.googleapis.com/";
    let (bucket, object) = if let Some(rest) = source.strip_prefix("gs://") {
        rest.split_once('/')?
    } else if let Some(rest) = source.strip_prefix(HTTPS) {
        rest.split_once('/')?
    } else {
        return None;
    };
    if bucket.is_empty() || object.is_empty() {
        return None;
    }
    Some(format!("{HTTPS}{bucket}/{object}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_storage_sources_become_https_urls() {
        assert_eq!(
            storage_url("gs://kubenow-images/kubenow-v050.tar.gz").as_deref(),
            Some("https://storage.googleapis.com/kubenow-images/kubenow-v050.tar.gz")
        );
        assert_eq!(
            storage_url("https://storage.googleapis.com/b/dir/img.tar.gz").as_deref(),
            Some("https://storage.googleapis.com/b/dir/img.tar.gz")
        );
        assert_eq!(storage_url("https://example.org/img.tar.gz"), None);
        assert_eq!(storage_url("gs://bucket-only"), None);
        assert_eq!(storage_url("gs://bucket/"), None);
    }
}

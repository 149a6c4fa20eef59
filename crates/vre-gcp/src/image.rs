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

use serde_json::Value;
use tokio::time::Instant;
use vre_core::spec::ImageSpec;
use vre_core::{CloudResource, Error, ResourceKind, ResourceStatus, Result, SpecField};

use crate::call;
use crate::provider::{GcpProvider, create, parse_path, str_at};

impl GcpProvider {
    /// Projects `image.name` is looked up in: the image project, then the own project (imports land there).
    pub(crate) fn image_projects(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = &self.settings.image_project {
            v.push(p.clone());
        }
        if !v.contains(&self.loc.project) {
            v.push(self.loc.project.clone());
        }
        v
    }

    /// The image named `name` (or the newest of the family `name`).
    pub(crate) async fn find_image(&self, name: &str) -> Result<Option<Value>> {
        for project in self.image_projects() {
            if let Some(v) = self.client.get_opt(&call::images_get(&project, name)).await? {
                return Ok(Some(v));
            }
            if let Some(v) = self
                .client
                .get_opt(&call::images_get_from_family(&project, name))
                .await?
            {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    pub(crate) fn image_resource(&self, v: &Value) -> Result<CloudResource> {
        let name = str_at(v, "/name").unwrap_or_default();
        let link = str_at(v, "/selfLink").unwrap_or_default();
        let project = parse_path(link).map_or(self.loc.project.as_str(), |p| p.project);
        let status = match str_at(v, "/status").unwrap_or("READY") {
            "READY" => ResourceStatus::Ready,
            "PENDING" => ResourceStatus::Pending,
            "DELETING" => ResourceStatus::Deleting,
            other => ResourceStatus::Failed {
                reason: format!("image status {other}"),
            },
        };
        Ok(CloudResource::new(
            ResourceKind::Image,
            format!("projects/{project}/global/images/{name}"),
            name,
        )
        .with_status(status))
    }

    pub(crate) async fn wait_image_ready(&self, name: &str) -> Result<CloudResource> {
        let poll = self.client.poll().clone();
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let v = self.client.send(&call::images_get(&self.loc.project, name)).await?;
            let img = self.image_resource(&v)?;
            match &img.status {
                ResourceStatus::Ready => return Ok(img),
                ResourceStatus::Failed { reason } => {
                    return Err(Error::rejected(
                        SpecField::ImageSource,
                        format!(
                            "importing image \"{name}\" failed ({reason}); check that the archive is a tar.gz holding disk.raw"
                        ),
                    ));
                }
                _ => {}
            }
            if started.elapsed() > poll.timeout {
                return Err(Error::Timeout {
                    what: format!("image {name} to become READY"),
                    after: poll.timeout,
                    hint: "the import continues; run the same command again later".into(),
                });
            }
            tokio::time::sleep(poll.delay(attempt, None)).await;
            attempt += 1;
        }
    }

    /// Finds the image or family, importing it from Cloud Storage when missing (`CloudProvider::ensure_image`).
    pub(crate) async fn image(&self, image: &ImageSpec) -> Result<CloudResource> {
        if let Some(v) = self.find_image(&image.name).await? {
            let img = self.image_resource(&v)?;
            return match img.status {
                ResourceStatus::Pending => self.wait_image_ready(&img.name).await,
                _ => Ok(img),
            };
        }
        let Some(source) = &image.source else {
            return Err(Error::rejected(
                SpecField::Image,
                format!(
                    "no image or image family \"{}\" in project(s) {}; set image.source to import one",
                    image.name,
                    self.image_projects().join(", ")
                ),
            ));
        };
        let url = crate::image::storage_url(source).ok_or_else(|| {
            Error::rejected(
                SpecField::ImageSource,
                format!("\"{source}\" is not a gs:// or https://storage.googleapis.com/ URL"),
            )
        })?;
        let desc = format!("imported by vre from {url}");
        create(&self.client, &call::images_insert(&self.loc, &image.name, &desc, &url)).await?;
        self.wait_image_ready(&image.name).await
    }
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

//! Glance images: the node image found by name, or imported from
//! `image.source` with interoperable image import (`web-download`) and
//! waited on until active.

use std::time::{Duration, Instant};

use vre_core::spec::ImageSpec;
use vre_core::{CloudResource, ResourceKind, SpecField, StepProgress};

use crate::error::OpenStackError;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{Image, ImageList, ImportInfo, disk_format_of};

impl OpenStackProvider {
    /// The image `image` names: found active, waited for while an earlier
    /// import runs, or imported from `image.source` with `web-download`.
    pub(crate) async fn image(&self, image: &ImageSpec, progress: &StepProgress) -> OsResult<CloudResource> {
        let found = self.images_named(&image.name).await?;
        let to_resource = |i: &Image| {
            let mut r = CloudResource::new(ResourceKind::Image, &i.id, i.name.clone().unwrap_or_default());
            if let Some(f) = &i.disk_format {
                r = r.with_attr("disk_format", f.clone());
            }
            r
        };
        if let Some(i) = found.iter().find(|i| i.status == "active") {
            return Ok(to_resource(i));
        }
        if let Some(i) = found
            .iter()
            .find(|i| matches!(i.status.as_str(), "queued" | "saving" | "importing"))
        {
            // an import already running (an earlier apply): wait for it
            if i.status != "queued" || i.os_glance_import_task.is_some() {
                let done = self.wait_image(&i.id, &image.name, progress).await?;
                return Ok(to_resource(&done));
            }
        }
        let Some(source) = &image.source else {
            return Err(OpenStackError::Rejected {
                field: SpecField::Image,
                message: format!(
                    "image \"{}\" does not exist on this cloud and image.source is not set; upload it or set image.source",
                    image.name
                ),
            });
        };
        let methods = match self.import_methods().await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        if !methods.iter().any(|m| m == "web-download") {
            return Err(OpenStackError::Rejected {
                field: SpecField::ImageSource,
                message: format!(
                    "image \"{}\" must be imported but this cloud's Glance does not offer the web-download import method; upload it yourself",
                    image.name
                ),
            });
        }
        let api = self.api().await?;
        // reuse a queued image of ours left by an interrupted import
        let id = match found.iter().find(|i| i.status == "queued") {
            Some(i) => i.id.clone(),
            None => {
                let format = self
                    .settings
                    .image_disk_format
                    .clone()
                    .unwrap_or_else(|| disk_format_of(source).into());
                let made: Image = api.json(requests::create_image(&image.name, &format)).await?;
                made.id
            }
        };
        api.send(requests::import_image(&id, source)).await?;
        progress.message(format!("importing {} from {source}", image.name));
        let done = self.wait_image(&id, &image.name, progress).await?;
        Ok(to_resource(&done))
    }

    pub(crate) async fn images_named(&self, name: &str) -> OsResult<Vec<Image>> {
        let l: ImageList = self.api().await?.json(requests::find_images(name)).await?;
        Ok(l.images)
    }

    pub(crate) async fn import_methods(&self) -> OsResult<Vec<String>> {
        let info: ImportInfo = self.api().await?.json(requests::import_info()).await?;
        Ok(info.import_methods.value)
    }

    pub(crate) async fn wait_image(&self, id: &str, name: &str, progress: &StepProgress) -> OsResult<Image> {
        let started = Instant::now();
        let limit = Duration::from_secs(3600);
        let mut delay = self.poll.first;
        loop {
            let img: Image = self.api().await?.json(requests::show_image(id)).await?;
            match img.status.as_str() {
                "active" => return Ok(img),
                "killed" | "deleted" | "deactivated" => {
                    return Err(OpenStackError::Failed {
                        service: "glance",
                        operation: "import image".into(),
                        message: format!("image \"{name}\" ({id}) went to {}; check image.source", img.status),
                    });
                }
                _ => {
                    if let Some(failed) = img.os_glance_failed_import.as_deref().filter(|s| !s.is_empty()) {
                        return Err(OpenStackError::Failed {
                            service: "glance",
                            operation: "import image".into(),
                            message: format!(
                                "importing image \"{name}\" failed for store(s) {failed}; check that image.source is reachable from the cloud"
                            ),
                        });
                    }
                    if img.status == "queued" && started.elapsed() > Duration::from_secs(600) {
                        return Err(OpenStackError::Failed {
                            service: "glance",
                            operation: "import image".into(),
                            message: format!(
                                "image \"{name}\" ({id}) stayed queued for 10 minutes: the web-download import never started; delete it and check image.source"
                            ),
                        });
                    }
                }
            }
            if started.elapsed() > limit {
                return Err(OpenStackError::Timeout {
                    what: format!("image \"{name}\" to become active"),
                    after: limit,
                });
            }
            progress.message(format!("image {name}: {}", img.status));
            tokio::time::sleep(delay).await;
            delay = self.poll.next(delay);
        }
    }
}

//! The AMI nodes boot from: `[aws] image_id`, else the newest available AMI
//! named `image.name` (wildcards allowed) owned by `[aws] image_owners`,
//! else an AMI vre imported before (tagged `Name = image.name`), else a VM
//! Import of `image.source` from S3 (`ImportImage`, polled with
//! `DescribeImportImageTasks`), tagged so the next lookup finds it.

use std::time::Duration;

use vre_cloud_kit::answer;
use vre_core::spec::ImageSpec;
use vre_core::{CloudResource, Error, ResourceKind, Result, SpecField, StepProgress};

use crate::error::{Blame, setting};
use crate::provider::{AwsProvider, attr};
use crate::requests;
use crate::wire::{self, DescribeImagesResponse, DescribeImportImageTasksResponse, ImportImageResponse, Tagged};

/// The tag recording where an imported AMI came from.
pub const SOURCE_TAG: &str = "vre:image-source";

/// A disk image in S3 that VM Import can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSource {
    pub bucket: String,
    pub key: String,
    /// VM Import's format name: `RAW`, `VHD`, `VHDX`, `VMDK`, `OVA`.
    pub format: &'static str,
}

impl ImportSource {
    /// Accepts `s3://bucket/key` and S3 https URLs (virtual-hosted or path
    /// style); the key's extension gives the format.
    pub fn parse(url: &str) -> std::result::Result<ImportSource, String> {
        let not_s3 = || {
            format!(
                "\"{url}\" is not in S3; VM Import reads disk images from S3 only: upload it (`aws s3 cp disk.vmdk s3://BUCKET/`) and write \"s3://BUCKET/disk.vmdk\""
            )
        };
        let (bucket, key): (String, String) = if let Some(rest) = url.strip_prefix("s3://") {
            let (b, k) = rest.split_once('/').ok_or_else(not_s3)?;
            (b.to_string(), k.to_string())
        } else {
            let parsed = url::Url::parse(url).map_err(|_| not_s3())?;
            let host = parsed.host_str().ok_or_else(not_s3)?;
            if parsed.scheme() != "https" || !(host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
            {
                return Err(not_s3());
            }
            let path = parsed.path().trim_start_matches('/');
            let first = host.split('.').next().unwrap_or_default();
            if first == "s3" || first.starts_with("s3-") {
                // path style: https://s3.<region>.amazonaws.com/<bucket>/<key>
                let (b, k) = path.split_once('/').ok_or_else(not_s3)?;
                (b.to_string(), k.to_string())
            } else if let Some((b, _)) = host.split_once(".s3") {
                // virtual-hosted style: https://<bucket>.s3.<region>.amazonaws.com/<key>
                (b.to_string(), path.to_string())
            } else {
                return Err(not_s3());
            }
        };
        if bucket.is_empty() || key.is_empty() {
            return Err(not_s3());
        }
        let ext = key
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let format = match ext.as_str() {
            "raw" => "RAW",
            "vhd" => "VHD",
            "vhdx" => "VHDX",
            "vmdk" => "VMDK",
            "ova" => "OVA",
            "qcow2" | "img" => {
                return Err(format!(
                    "\"{url}\": VM Import does not take qcow2 disks (Ubuntu's cloud .img files are qcow2); convert it with `qemu-img convert -O raw IN OUT.raw`, upload OUT.raw and point image.source at it"
                ));
            }
            _ => {
                return Err(format!(
                    "\"{url}\": cannot tell the disk format; VM Import takes .raw, .vhd, .vhdx, .vmdk and .ova files"
                ));
            }
        };
        Ok(ImportSource { bucket, key, format })
    }

    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// What an import task reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportProgress {
    Running { message: String },
    Done { image_id: String },
    Failed { message: String },
}

/// Reads one `ImportImageTask`.
pub fn import_progress(task: &wire::ImportImageTask) -> ImportProgress {
    let message = || {
        let m = task.status_message.clone().unwrap_or_default();
        match &task.progress {
            Some(p) if !p.is_empty() => format!("{m} ({p}%)"),
            _ => m,
        }
    };
    match task.status.as_str() {
        "completed" => match &task.image_id {
            Some(id) if !id.is_empty() => ImportProgress::Done { image_id: id.clone() },
            _ => ImportProgress::Failed {
                message: "the task completed without an AMI id".into(),
            },
        },
        "deleting" | "deleted" | "cancelled" | "canceled" => ImportProgress::Failed {
            message: task.status_message.clone().unwrap_or_else(|| task.status.clone()),
        },
        _ => ImportProgress::Running { message: message() },
    }
}

fn newest_available(images: Vec<wire::Image>) -> Option<wire::Image> {
    let mut usable: Vec<wire::Image> = images
        .into_iter()
        .filter(|i| matches!(i.image_state.as_str(), "available" | "pending"))
        .collect();
    // available first, then newest (ISO 8601 dates sort as text)
    usable.sort_by(|a, b| {
        (a.image_state == "available")
            .cmp(&(b.image_state == "available"))
            .then_with(|| a.creation_date.cmp(&b.creation_date))
    });
    usable.pop()
}

impl AwsProvider {
    fn image_resource(img: &wire::Image) -> CloudResource {
        // an imported AMI has a generated name; vre names it by tag
        let name = img.tag("Name").unwrap_or(&img.name);
        let mut r = CloudResource::new(ResourceKind::Image, &img.image_id, name)
            .with_attr(attr::STATE, img.image_state.clone());
        if let Some(d) = &img.root_device_name {
            r = r.with_attr(attr::ROOT_DEVICE, d.clone());
        }
        if let Some(a) = &img.architecture {
            r = r.with_attr("architecture", a.clone());
        }
        r
    }

    /// The newest usable AMI named `name` (by name among the owners, then by
    /// the Name tag of images vre imported).
    pub(crate) async fn find_image(&self, name: &str, blame: &Blame) -> Result<Option<wire::Image>> {
        let by_name: Vec<DescribeImagesResponse> = self
            .ec2
            .call_pages(requests::describe_images_by_name(name, &self.settings.image_owners))
            .await
            .map_err(|e| e.blame(blame))?;
        if let Some(i) = newest_available(by_name.into_iter().flat_map(|p| p.images_set.into_vec()).collect()) {
            return Ok(Some(i));
        }
        let imported: Vec<DescribeImagesResponse> = self
            .ec2
            .call_pages(requests::describe_images_by_name_tag(name))
            .await
            .map_err(|e| e.blame(blame))?;
        Ok(newest_available(
            imported.into_iter().flat_map(|p| p.images_set.into_vec()).collect(),
        ))
    }

    pub(crate) async fn image_by_id(&self, id: &str) -> Result<Option<wire::Image>> {
        match self
            .ec2
            .call::<DescribeImagesResponse>(&requests::describe_images_by_id(id))
            .await
        {
            Ok(r) => Ok(r.images_set.into_vec().into_iter().next()),
            Err(e) if e.is_not_found() || e.is_code("InvalidAMIID.Malformed") => Ok(None),
            Err(e) => Err(e.blame(&Blame::image(setting("image_id")))),
        }
    }

    /// Waits until an AMI is available.
    async fn until_available(&self, img: wire::Image, field: SpecField) -> Result<CloudResource> {
        if img.image_state == "available" {
            return Ok(Self::image_resource(&img));
        }
        let id = img.image_id.clone();
        let timeout = Duration::from_secs(u64::from(self.settings.import_timeout_minutes) * 60);
        let ready = self
            .poll(&format!("AMI {id} to become available"), timeout, || async {
                let Some(i) = self.image_by_id(&id).await? else {
                    return Err(Error::rejected(
                        field.clone(),
                        format!("AMI {id} disappeared while vre waited for it"),
                    ));
                };
                match i.image_state.as_str() {
                    "available" => Ok(Some(i)),
                    "pending" | "transient" => Ok(None),
                    other => Err(Error::rejected(
                        field.clone(),
                        format!(
                            "AMI {id} is {other}{}; pick another image",
                            i.state_reason
                                .as_ref()
                                .map(|r| format!(" ({})", r.message))
                                .unwrap_or_default()
                        ),
                    )),
                }
            })
            .await?;
        Ok(Self::image_resource(&ready))
    }

    pub(crate) async fn image(&self, image: &ImageSpec, progress: &StepProgress) -> Result<CloudResource> {
        if let Some(id) = &self.settings.image_id {
            let img = self.image_by_id(id).await?.ok_or_else(|| {
                Error::rejected(
                    setting("image_id"),
                    format!(
                        "AMI {id} does not exist in region {} (or is not shared with this account)",
                        self.ec2.region()
                    ),
                )
            })?;
            return self.until_available(img, setting("image_id")).await;
        }
        if let Some(img) = self.find_image(&image.name, &Blame::image(SpecField::Image)).await? {
            return self.until_available(img, SpecField::Image).await;
        }
        match &image.source {
            Some(source) => self.import(image, source, progress).await,
            None => Err(Error::rejected(
                SpecField::Image,
                format!(
                    "no AMI named \"{}\" owned by {} in region {}; fix the name (wildcards such as `*` are allowed), add the owner to [aws] image_owners, set [aws] image_id, or set image.source to an s3:// disk image to import",
                    image.name,
                    self.settings.image_owners.join(", "),
                    self.ec2.region()
                ),
            )),
        }
    }

    /// Imports `source` with VM Import and names the AMI by tag.
    async fn import(&self, image: &ImageSpec, source: &str, progress: &StepProgress) -> Result<CloudResource> {
        let src = ImportSource::parse(source).map_err(|m| Error::rejected(SpecField::ImageSource, m))?;
        let token = Self::token(&["import", &image.name, &src.url()]);
        let description = format!("vre: {} from {}", image.name, src.url());
        let tags = vec![
            ("Name".to_string(), image.name.clone()),
            (SOURCE_TAG.to_string(), src.url()),
        ];
        progress.message(format!(
            "importing {} from {} (VM Import; this takes a while)",
            image.name,
            src.url()
        ));
        let q = requests::import_image(&src, &self.settings.import_role, &token, &description, &tags);
        let started: ImportImageResponse = self.ec2.call(&q).await.map_err(|e| {
            if e.is_code("InvalidParameter") || e.is_code("InvalidParameterValue") || e.is_code("AccessDenied") {
                Error::rejected(
                    SpecField::ImageSource,
                    format!(
                        "{e}; the IAM role \"{}\" ([aws] import_role) must exist and be allowed to read s3://{}",
                        self.settings.import_role, src.bucket
                    ),
                )
            } else {
                e.into()
            }
        })?;
        let task_id = started.import_task_id;
        let timeout = Duration::from_secs(u64::from(self.settings.import_timeout_minutes) * 60);
        let image_id = self
            .poll(&format!("image import {task_id}"), timeout, || async {
                let r: DescribeImportImageTasksResponse =
                    self.call(&requests::describe_import_image_task(&task_id), &Blame::default()).await?;
                let Some(task) = r.import_image_task_set.into_vec().into_iter().next() else {
                    // a new task can take a moment to show up
                    return Ok(None);
                };
                match import_progress(&task) {
                    ImportProgress::Done { image_id } => Ok(Some(image_id)),
                    ImportProgress::Running { message } => {
                        progress.message(format!("import {task_id}: {message}"));
                        Ok(None)
                    }
                    ImportProgress::Failed { message } => Err(answer::failed(
                        crate::error::SERVICE,
                        format!("import {}", src.url()),
                        None,
                        None,
                        format!(
                            "VM Import task {task_id} failed: {message}; check the disk format and that role \"{}\" may read the bucket",
                            self.settings.import_role
                        ),
                        false,
                    )
                    .into()),
                }
            })
            .await?;
        self.send(&requests::create_tags(&[&image_id], &tags), &Blame::default())
            .await?;
        let img = self.image_by_id(&image_id).await?.ok_or_else(|| {
            Error::component(
                "image",
                format!("VM Import reported AMI {image_id}, which EC2 does not list"),
            )
        })?;
        let mut r = self.until_available(img, SpecField::ImageSource).await?;
        r.name = image.name.clone();
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_sources_parse_in_every_url_style() {
        let want = ImportSource {
            bucket: "lab-images".into(),
            key: "disks/noble.vmdk".into(),
            format: "VMDK",
        };
        for url in [
            "s3://lab-images/disks/noble.vmdk",
            "https://lab-images.s3.amazonaws.com/disks/noble.vmdk",
            "https://lab-images.s3.eu-north-1.amazonaws.com/disks/noble.vmdk",
            "https://s3.eu-north-1.amazonaws.com/lab-images/disks/noble.vmdk",
            "https://s3-eu-west-1.amazonaws.com/lab-images/disks/noble.vmdk",
        ] {
            assert_eq!(ImportSource::parse(url).as_ref(), Ok(&want), "{url}");
        }
        assert_eq!(ImportSource::parse("s3://b/x.RAW").unwrap().format, "RAW");
        assert_eq!(ImportSource::parse("s3://b/x.ova").unwrap().format, "OVA");
    }

    #[test]
    fn unusable_sources_say_what_to_do() {
        let e = ImportSource::parse("https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img")
            .unwrap_err();
        assert!(e.contains("VM Import reads disk images from S3 only"), "{e}");
        let e = ImportSource::parse("s3://b/noble-server-cloudimg-amd64.img").unwrap_err();
        assert!(e.contains("qemu-img convert -O raw"), "{e}");
        let e = ImportSource::parse("s3://b/disk.iso").unwrap_err();
        assert!(e.contains(".raw, .vhd, .vhdx, .vmdk and .ova"), "{e}");
        assert!(ImportSource::parse("s3://bucket-only").is_err());
    }

    #[test]
    fn import_task_states_map_to_progress() {
        let task = |status: &str, msg: Option<&str>, img: Option<&str>| wire::ImportImageTask {
            import_task_id: "import-ami-1".into(),
            status: status.into(),
            status_message: msg.map(str::to_string),
            progress: Some("28".into()),
            image_id: img.map(str::to_string),
        };
        assert_eq!(
            import_progress(&task("active", Some("converting"), None)),
            ImportProgress::Running {
                message: "converting (28%)".into()
            }
        );
        assert_eq!(
            import_progress(&task("completed", None, Some("ami-0abc"))),
            ImportProgress::Done {
                image_id: "ami-0abc".into()
            }
        );
        assert_eq!(
            import_progress(&task(
                "deleted",
                Some("ClientError: Unknown OS / Missing OS files."),
                None
            )),
            ImportProgress::Failed {
                message: "ClientError: Unknown OS / Missing OS files.".into()
            }
        );
    }

    #[test]
    fn the_newest_available_image_wins() {
        let img = |id: &str, state: &str, date: &str| wire::Image {
            image_id: id.into(),
            image_state: state.into(),
            creation_date: Some(date.into()),
            ..Default::default()
        };
        let pick = newest_available(vec![
            img("ami-old", "available", "2024-01-01T00:00:00.000Z"),
            img("ami-new", "available", "2025-06-01T00:00:00.000Z"),
            img("ami-newest-pending", "pending", "2025-07-01T00:00:00.000Z"),
            img("ami-broken", "failed", "2025-08-01T00:00:00.000Z"),
        ]);
        assert_eq!(pick.unwrap().image_id, "ami-new");
        let pick = newest_available(vec![img("ami-p", "pending", "2025-07-01T00:00:00.000Z")]);
        assert_eq!(pick.unwrap().image_id, "ami-p");
        assert!(newest_available(vec![img("ami-x", "deregistered", "2025-01-01")]).is_none());
    }
}

//! The image nodes boot from: a Marketplace URN or an image id, referenced, never copied.

use vre_core::spec::ImageSpec;
use vre_core::{CloudResource, Error, ResourceKind, Result, SpecField};

use crate::call::ImageRef;
use crate::provider::AzureProvider;

impl AzureProvider {
    /// The image nodes boot from: the table's, else `image.name` read as a URN or id.
    pub(crate) fn image(&self, image: &ImageSpec) -> Result<ImageRef> {
        self.settings.image_for(image).ok_or_else(not_an_image)
    }

    /// The image as a reference; nothing is imported (`CloudProvider::ensure_image`).
    pub(crate) async fn referenced_image(&self, image: &ImageSpec) -> Result<CloudResource> {
        if image.source.is_some() {
            return Err(Error::rejected(
                SpecField::ImageSource,
                "vre cannot import images on Azure; set azure.image_id to an uploaded image",
            ));
        }
        // Marketplace images are referenced, not copied: the VM create checks them
        let img = self.image(image)?;
        let mut r = CloudResource::new(ResourceKind::Image, img.describe(), img.describe());
        if let ImageRef::Platform {
            publisher,
            offer,
            sku,
            version,
        } = img
        {
            r = r
                .with_attr("publisher", publisher)
                .with_attr("offer", offer)
                .with_attr("sku", sku)
                .with_attr("version", version);
        }
        Ok(r)
    }
}

/// `image.name` (with no image in the table) names no Azure image.
pub(crate) fn not_an_image() -> Error {
    Error::rejected(
        SpecField::Image,
        "is not an Azure image; write publisher:offer:sku:version such as \"Canonical:ubuntu-24_04-lts:server:latest\"",
    )
}

//! Nova flavors: listed once per provider (every page), looked up by name or
//! id, and named in the error when a role asks for one the cloud lacks.

use vre_core::SpecField;
use vre_core::spec::Role;

use crate::error::OpenStackError;
use crate::paging::list_all;
use crate::provider::{OpenStackProvider, OsResult};
use crate::requests;
use crate::wire::{Flavor, FlavorList};

impl OpenStackProvider {
    /// Every flavor (`GET /flavors/detail`, all pages), listed once.
    pub(crate) async fn flavors(&self) -> OsResult<Vec<Flavor>> {
        let mut cache = self.flavors.lock().await;
        if let Some(f) = cache.as_ref() {
            return Ok(f.clone());
        }
        let flavors = list_all::<FlavorList>(self.api().await?, requests::list_flavors).await?;
        *cache = Some(flavors.clone());
        Ok(flavors)
    }

    /// The flavor `name` (or id) that `role` asks for.
    pub(crate) async fn flavor(&self, role: Role, name: &str) -> OsResult<Flavor> {
        let flavors = self.flavors().await?;
        if let Some(f) = flavors.iter().find(|f| f.name == name || f.id == name) {
            return Ok(f.clone());
        }
        Err(OpenStackError::Rejected {
            field: SpecField::Flavor(role),
            message: unknown_flavor(name, &flavors),
        })
    }
}

/// The message for a flavor the cloud does not have, listing those it has.
pub(crate) fn unknown_flavor(name: &str, flavors: &[Flavor]) -> String {
    let mut names: Vec<&str> = flavors.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    format!(
        "flavor \"{name}\" does not exist on this cloud; available: {}",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nova_stub;

    #[test]
    fn unknown_flavor_lists_the_available_ones() {
        let f = |n: &str| Flavor {
            id: n.into(),
            name: n.into(),
            vcpus: 1,
            ram: 512,
            disk: 1,
        };
        assert_eq!(
            unknown_flavor("m1.huge", &[f("m1.medium"), f("m1.small")]),
            "flavor \"m1.huge\" does not exist on this cloud; available: m1.medium, m1.small"
        );
    }

    /// A flavor listing answered 503 is retriable; the retry reads every page.
    #[tokio::test]
    async fn an_unavailable_flavor_listing_is_retriable() {
        let stub = nova_stub::start().await;
        let p = stub.provider();
        let e: vre_core::Error = p.flavor(Role::Service, "m1.medium").await.unwrap_err().into();
        assert_eq!(e.retry(), Some(None), "5xx is retried: {e}");
        assert!(e.to_string().contains("HTTP 503"), "{e}");
        let f = p.flavor(Role::Service, "m1.medium").await.unwrap();
        assert_eq!((f.id.as_str(), f.vcpus, f.ram, f.disk), ("3", 2, 4096, 40));
        // listed once (two pages), then served from the cache
        let e = p.flavor(Role::Service, "m1.huge").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "nodes.service.flavor: flavor \"m1.huge\" does not exist on this cloud; available: m1.medium, m1.small, m1.tiny"
        );
        assert_eq!(stub.nova.lock().unwrap().calls["GET /compute/v2.1/flavors/detail"], 3);
    }
}

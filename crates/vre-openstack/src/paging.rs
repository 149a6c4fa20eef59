//! Nova and Cinder listings come in pages linked by `rel = "next"`: every
//! page is asked for from the `marker` of the last item of the previous one.

use serde::de::DeserializeOwned;

use crate::api::{Api, Call};
use crate::provider::OsResult;
use crate::wire::{Flavor, FlavorList, Link, Server, ServerList, Volume, VolumeList};

/// One page of a listing.
pub(crate) trait Page: DeserializeOwned {
    /// What the listing lists.
    type Item;
    /// The page's items and its links.
    fn into_parts(self) -> (Vec<Self::Item>, Vec<Link>);
    /// The id a marker names `item` by.
    fn id(item: &Self::Item) -> &str;
}

impl Page for FlavorList {
    type Item = Flavor;
    fn into_parts(self) -> (Vec<Flavor>, Vec<Link>) {
        (self.flavors, self.flavors_links)
    }
    fn id(item: &Flavor) -> &str {
        &item.id
    }
}

impl Page for ServerList {
    type Item = Server;
    fn into_parts(self) -> (Vec<Server>, Vec<Link>) {
        (self.servers, self.servers_links)
    }
    fn id(item: &Server) -> &str {
        &item.id
    }
}

impl Page for VolumeList {
    type Item = Volume;
    fn into_parts(self) -> (Vec<Volume>, Vec<Link>) {
        (self.volumes, self.volumes_links)
    }
    fn id(item: &Volume) -> &str {
        &item.id
    }
}

/// Every item of the listing whose page after `marker` `page(marker)` asks for.
pub(crate) async fn list_all<P: Page>(
    api: &Api,
    page: impl Fn(Option<&str>) -> Call<'static>,
) -> OsResult<Vec<P::Item>> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let (items, links) = api.json::<P>(page(marker.as_deref())).await?.into_parts();
        let more = links.iter().any(|l| l.rel == "next") && !items.is_empty();
        marker = items.last().map(|i| P::id(i).to_string());
        out.extend(items);
        if !more {
            return Ok(out);
        }
    }
}

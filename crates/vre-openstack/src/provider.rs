//! [`OpenStackProvider`]: vre's `CloudProvider` on Nova, Neutron, Cinder and Glance.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::{Mutex, OnceCell};
use vre_core::plan::{key_pair_name, network_name, security_group_name};
use vre_core::spec::{ClusterSpec, ImageSpec, Ipv4Cidr, Role};
use vre_core::{
    CLUSTER_TAG, Capabilities, CloudProvider, CloudResource, ClusterRef, EventSink, InstanceBatch, KEY_TAG,
    NetworkInfo, NetworkRequest, ROLE_TAG, ResourceKey, ResourceKind, ResourceStatus, Result, SecurityGroupRequest,
    VolumeRequest, attr,
};

use crate::api::{Api, Call, Service, from_osauth};
use crate::auth::{Credentials, KeystoneAuth, SharedAuth};
use crate::error::OpenStackError;
use crate::settings::OpenStackSettings;
use crate::wire::*;

type OsResult<T> = std::result::Result<T, OpenStackError>;

/// Attribute holding the id of the cluster's router.
pub const ROUTER_ID: &str = "router_id";

/// How often waits poll: the first delay, multiplied by 1.5 up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollPolicy {
    pub first: Duration,
    pub max: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }
}

impl PollPolicy {
    fn next(&self, d: Duration) -> Duration {
        d.mul_f64(1.5).min(self.max)
    }
}

/// The OpenStack provider. Authenticates on first use; building it makes no call.
pub struct OpenStackProvider {
    credentials: Credentials,
    settings: OpenStackSettings,
    /// The spec, for the master's fixed address (kept out of the subnet's
    /// allocation pool) and root disk sizes.
    spec: Option<Arc<ClusterSpec>>,
    events: EventSink,
    poll: PollPolicy,
    api: OnceCell<Api>,
    flavors: Mutex<Option<Vec<Flavor>>>,
    /// The last listing of each cluster's servers, shared by every wait.
    servers: Mutex<BTreeMap<String, (Instant, Vec<Server>)>>,
}

impl std::fmt::Debug for OpenStackProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackProvider")
            .field("credentials", &self.credentials)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OpenStackProvider {
    /// A provider for `credentials` (no network call until first used).
    pub fn new(credentials: Credentials, settings: OpenStackSettings) -> Self {
        OpenStackProvider {
            credentials,
            settings,
            spec: None,
            events: EventSink::none(),
            poll: PollPolicy::default(),
            api: OnceCell::new(),
            flavors: Mutex::new(None),
            servers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Password authentication given in code: what the facade uses to point
    /// the provider at the embedded simulator (`user = "admin"`, project
    /// `vre`, domain `Default`).
    pub fn with_password(
        auth_url: &str,
        user: &str,
        password: &str,
        project: &str,
        domain: &str,
        settings: OpenStackSettings,
    ) -> Self {
        OpenStackProvider::new(
            Credentials::password(auth_url, user, password, project, domain),
            settings,
        )
    }

    pub fn with_spec(mut self, spec: Arc<ClusterSpec>) -> Self {
        self.spec = Some(spec);
        self
    }

    pub fn with_events(mut self, events: EventSink) -> Self {
        self.events = events;
        self
    }

    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.poll = poll;
        self
    }

    pub fn settings(&self) -> &OpenStackSettings {
        &self.settings
    }

    /// The authenticated connection (set up on first use).
    pub async fn api(&self) -> OsResult<&Api> {
        self.api
            .get_or_try_init(|| async {
                let auth = Arc::new(KeystoneAuth::new(self.credentials.clone())?);
                let client = self.credentials.http_client()?;
                let mut session = osauth::Session::new_with_client(client, SharedAuth(auth.clone()))
                    .await
                    .map_err(|e| from_osauth("keystone", "authenticate", e))?;
                session.set_endpoint_interface(self.credentials.interface_type()?);
                if let Some(r) = &self.credentials.region {
                    session.set_region(r.clone());
                }
                Ok(Api::new(session, auth))
            })
            .await
    }

    fn network_name(&self, cluster: &ClusterRef) -> String {
        self.settings
            .network
            .clone()
            .unwrap_or_else(|| network_name(&cluster.name))
    }

    fn master_ip(&self, cidr: &Ipv4Cidr) -> Option<Ipv4Addr> {
        self.spec.as_ref().and_then(|s| s.network.master_address(cidr))
    }

    // ------------------------------------------------------------ lookups

    /// Every flavor (`GET /flavors/detail`, all pages), listed once.
    async fn flavors(&self) -> OsResult<Vec<Flavor>> {
        let mut cache = self.flavors.lock().await;
        if let Some(f) = cache.as_ref() {
            return Ok(f.clone());
        }
        let api = self.api().await?;
        let mut flavors: Vec<Flavor> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut call = Call::get(Service::Nova, &["flavors", "detail"], "list flavors");
            if let Some(m) = &marker {
                call = call.query("marker", m.clone());
            }
            let page: FlavorList = api.json(call).await?;
            let more = page.flavors_links.iter().any(|l| l.rel == "next") && !page.flavors.is_empty();
            marker = page.flavors.last().map(|f| f.id.clone());
            flavors.extend(page.flavors);
            if !more {
                break;
            }
        }
        *cache = Some(flavors.clone());
        Ok(flavors)
    }

    /// `GET /os-keypairs/{name}`; `None` when Nova has no such key pair.
    async fn show_key_pair(&self, name: &str) -> OsResult<Option<KeyPair>> {
        match self
            .api()
            .await?
            .json::<KeyPairOne>(Call::get(Service::Nova, &["os-keypairs", name], "show key pair"))
            .await
        {
            Ok(k) => Ok(Some(k.keypair)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /os-keypairs/{name}`; one already gone is success.
    async fn delete_key_pair(&self, name: &str) -> OsResult<()> {
        match self
            .api()
            .await?
            .send(Call::delete(Service::Nova, &["os-keypairs", name], "delete key pair"))
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    async fn flavor(&self, role: Role, name: &str) -> OsResult<Flavor> {
        let flavors = self.flavors().await?;
        if let Some(f) = flavors.iter().find(|f| f.name == name || f.id == name) {
            return Ok(f.clone());
        }
        Err(OpenStackError::Input {
            field: format!("nodes.{role}.flavor"),
            message: unknown_flavor(name, &flavors),
        })
    }

    async fn networks_named(&self, name: &str, external: bool) -> OsResult<Vec<Network>> {
        let mut call = Call::get(Service::Neutron, &["networks"], "find network").query("name", name);
        if external {
            call = call.query("router:external", "true");
        }
        let v: Value = self.api().await?.json(call).await?;
        parse_list(&v, "networks", "neutron", "find network")
    }

    /// The external network called `name`, or an error naming `field`.
    async fn external_network(&self, name: &str, field: &str) -> OsResult<Network> {
        if let Some(n) = self.networks_named(name, true).await?.into_iter().next() {
            return Ok(n);
        }
        let v: Value = self
            .api()
            .await?
            .json(Call::get(Service::Neutron, &["networks"], "list external networks").query("router:external", "true"))
            .await?;
        let all: Vec<Network> = parse_list(&v, "networks", "neutron", "list external networks")?;
        let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
        Err(OpenStackError::Input {
            field: field.to_string(),
            message: format!(
                "external network \"{name}\" does not exist on this cloud; available: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        })
    }

    async fn list_tagged<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        plural: &str,
        cluster: &ClusterRef,
    ) -> OsResult<Vec<T>> {
        let op = format!("list {plural}");
        let v: Value = self
            .api()
            .await?
            .json(Call::get(Service::Neutron, &[resource], &op).query("tags", cluster_tag(&cluster.name)))
            .await?;
        parse_list(&v, plural, "neutron", &op)
    }

    async fn set_tags(&self, resource: &str, id: &str, tags: Vec<String>) -> OsResult<()> {
        self.api()
            .await?
            .send(Call::put(
                Service::Neutron,
                &[resource, id, "tags"],
                json!({ "tags": tags }),
                "set tags",
            ))
            .await
    }

    /// The cluster's servers, from a listing at most `max_age` old (one
    /// `GET /servers/detail` serves every concurrent wait).
    async fn cluster_servers(&self, cluster: &ClusterRef, max_age: Duration) -> OsResult<Vec<Server>> {
        let mut cache = self.servers.lock().await;
        if let Some((at, list)) = cache.get(&cluster.name)
            && at.elapsed() < max_age
        {
            return Ok(list.clone());
        }
        let list = self.list_servers(cluster, None).await?;
        cache.insert(cluster.name.clone(), (Instant::now(), list.clone()));
        Ok(list)
    }

    /// `GET /servers/detail?name=^<cluster>-` (all pages), the cluster's only.
    async fn list_servers(&self, cluster: &ClusterRef, reservation: Option<&str>) -> OsResult<Vec<Server>> {
        let api = self.api().await?;
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut call = Call::get(Service::Nova, &["servers", "detail"], "list servers")
                .query("name", format!("^{}-", cluster.name))
                .query("limit", "1000");
            if let Some(r) = reservation {
                call = call.query("reservation_id", r);
            }
            if let Some(m) = &marker {
                call = call.query("marker", m.clone());
            }
            let page: ServerList = api.json(call).await?;
            let more = page.servers_links.iter().any(|l| l.rel == "next") && !page.servers.is_empty();
            marker = page.servers.last().map(|s| s.id.clone());
            out.extend(
                page.servers
                    .into_iter()
                    .filter(|s| s.metadata.get(CLUSTER_TAG).map(String::as_str) == Some(cluster.name.as_str())),
            );
            if !more {
                return Ok(out);
            }
        }
    }

    async fn server_resource(&self, cluster: &ClusterRef, s: &Server) -> OsResult<CloudResource> {
        let key = ResourceKey::server_from_name(&cluster.name, &s.name).map(|(r, i)| ResourceKey::server(r, i));
        let net = self.network_name(cluster);
        let ip = s.private_ip(Some(&net)).or_else(|| s.private_ip(None));
        let status = match s.status.as_str() {
            "ACTIVE" | "SHUTOFF" | "PAUSED" | "SUSPENDED" if ip.is_some() => ResourceStatus::Ready,
            "ERROR" => ResourceStatus::Failed {
                reason: s
                    .fault
                    .as_ref()
                    .map(|f| crate::error::one_line(&f.message))
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "Nova put the server in ERROR without a fault message".into()),
            },
            "DELETED" | "SOFT_DELETED" => ResourceStatus::Deleting,
            _ => ResourceStatus::Pending,
        };
        let mut r = CloudResource::new(ResourceKind::Instance, &s.id, &s.name).with_status(status);
        if let Some(k) = key {
            r = r.with_key(k);
        }
        if let Some(ip) = ip {
            r = r.with_attr(attr::PRIVATE_IP, ip.to_string());
        }
        if let Some(role) = s.metadata.get(ROLE_TAG) {
            r = r.with_attr(attr::ROLE, role.clone());
        }
        if let Some(f) = &s.flavor {
            let name = match (&f.original_name, &f.id) {
                (Some(n), _) => Some(n.clone()),
                (None, Some(id)) => self.flavors().await?.into_iter().find(|x| &x.id == id).map(|x| x.name),
                _ => None,
            };
            if let Some(n) = name {
                r = r.with_attr(attr::FLAVOR, n);
            }
        }
        if let ResourceStatus::Failed { reason } = &r.status {
            let reason = reason.clone();
            r = r.with_attr(attr::FAULT, reason);
        }
        Ok(r)
    }

    async fn volumes(&self, cluster: &ClusterRef) -> OsResult<Vec<Volume>> {
        let api = self.api().await?;
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        let filter = json!({ CLUSTER_TAG: cluster.name }).to_string();
        loop {
            let mut call = Call::get(Service::Cinder, &["volumes", "detail"], "list volumes")
                .query("metadata", filter.clone())
                .query("limit", "1000");
            if let Some(m) = &marker {
                call = call.query("marker", m.clone());
            }
            let page: VolumeList = api.json(call).await?;
            let more = page.volumes_links.iter().any(|l| l.rel == "next") && !page.volumes.is_empty();
            marker = page.volumes.last().map(|v| v.id.clone());
            out.extend(
                page.volumes
                    .into_iter()
                    .filter(|v| v.meta(CLUSTER_TAG) == Some(cluster.name.as_str())),
            );
            if !more {
                return Ok(out);
            }
        }
    }

    async fn volume(&self, id: &str) -> OsResult<Volume> {
        let v: VolumeOne = self
            .api()
            .await?
            .json(Call::get(Service::Cinder, &["volumes", id], "show volume"))
            .await?;
        Ok(v.volume)
    }

    /// Polls a volume until `done` says so; an `error*` status fails.
    async fn wait_volume(&self, id: &str, what: &str, done: impl Fn(&Volume) -> bool) -> OsResult<Option<Volume>> {
        let started = Instant::now();
        let limit = Duration::from_secs(900);
        let mut delay = self.poll.first;
        loop {
            match self.volume(id).await {
                Ok(v) if done(&v) => return Ok(Some(v)),
                Ok(v) if v.status.starts_with("error") => {
                    return Err(OpenStackError::Failed {
                        service: "cinder",
                        operation: what.to_string(),
                        message: format!(
                            "volume {} went to {}; look at it with `openstack volume show {id}`",
                            v.name.unwrap_or_default(),
                            v.status
                        ),
                    });
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            }
            if started.elapsed() > limit {
                return Err(OpenStackError::Timeout {
                    what: format!("volume {id} to {what}"),
                    after: limit,
                });
            }
            tokio::time::sleep(delay).await;
            delay = self.poll.next(delay);
        }
    }

    fn volume_resource(&self, v: &Volume) -> CloudResource {
        let key = v.meta(KEY_TAG).and_then(ResourceKey::parse);
        let status = match v.status.as_str() {
            "available" | "in-use" => ResourceStatus::Ready,
            s if s.starts_with("error") => ResourceStatus::Failed {
                reason: format!("Cinder reports the volume as {s}"),
            },
            "deleting" => ResourceStatus::Deleting,
            _ => ResourceStatus::Pending,
        };
        let mut r = CloudResource::new(ResourceKind::Volume, &v.id, v.name.clone().unwrap_or_default())
            .with_status(status)
            .with_attr(attr::SIZE_GB, v.size.to_string());
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    fn attachment_resource(&self, v: &Volume, a: &CinderAttachment) -> CloudResource {
        let key = v
            .meta(KEY_TAG)
            .and_then(ResourceKey::parse)
            .and_then(|k| k.node())
            .map(|(r, i)| ResourceKey::attachment(r, i));
        let name = format!("{}-attachment", v.name.clone().unwrap_or_else(|| v.id.clone()));
        let mut r = CloudResource::new(
            ResourceKind::VolumeAttachment,
            format!("{}/{}", a.server_id, v.id),
            name,
        )
        .with_attr(attr::INSTANCE_ID, a.server_id.clone())
        .with_attr(attr::VOLUME_ID, v.id.clone());
        if let Some(d) = &a.device {
            r = r.with_attr(attr::DEVICE, d.clone());
        }
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    fn floating_ip_resource(&self, f: &FloatingIp, name: Option<&str>) -> CloudResource {
        let key = tag_value(&f.tags, KEY_TAG).and_then(ResourceKey::parse);
        let name = name.map(str::to_string).unwrap_or_else(|| f.description.clone());
        let mut r = CloudResource::new(ResourceKind::PublicIp, &f.id, name)
            .with_attr(attr::ADDRESS, f.floating_ip_address.clone());
        if let Some(p) = &f.port_id {
            r = r.with_attr("port_id", p.clone());
        }
        if let Some(ip) = &f.fixed_ip_address {
            r = r.with_attr(attr::PRIVATE_IP, ip.clone());
        }
        if let Some(k) = key {
            r = r.with_key(k);
        }
        r
    }

    async fn images_named(&self, name: &str) -> OsResult<Vec<Image>> {
        let l: ImageList = self
            .api()
            .await?
            .json(Call::get(Service::Glance, &["images"], "find image").query("name", name))
            .await?;
        Ok(l.images)
    }

    async fn import_methods(&self) -> OsResult<Vec<String>> {
        let info: ImportInfo = self
            .api()
            .await?
            .json(Call::get(
                Service::Glance,
                &["info", "import"],
                "discover import methods",
            ))
            .await?;
        Ok(info.import_methods.value)
    }

    async fn wait_image(&self, id: &str, name: &str) -> OsResult<Image> {
        let started = Instant::now();
        let limit = Duration::from_secs(3600);
        let mut delay = self.poll.first;
        loop {
            let img: Image = self
                .api()
                .await?
                .json(Call::get(Service::Glance, &["images", id], "show image"))
                .await?;
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
            self.events.progress("image", format!("image {name}: {}", img.status));
            tokio::time::sleep(delay).await;
            delay = self.poll.next(delay);
        }
    }

    // ------------------------------------------------------------ network parts

    /// Finds the Neutron resource called `named.name` (tagging it when it
    /// lacks the cluster's tags), or creates and tags it.
    async fn ensure_named<T: serde::de::DeserializeOwned + Clone>(
        &self,
        named: Named<'_>,
        tags_of: impl Fn(&T) -> &Vec<String>,
        id_of: impl Fn(&T) -> &str,
    ) -> OsResult<T> {
        let Named {
            resource,
            singular,
            name,
            extra_query,
            body,
            tags,
            ..
        } = &named;
        let (resource, singular, tags) = (*resource, *singular, tags.clone());
        let api = self.api().await?;
        let op = format!("find {singular}");
        let mut call = Call::get(Service::Neutron, &[resource], &op).query("name", *name);
        for (k, v) in extra_query.iter() {
            call = call.query(k, v.clone());
        }
        let v: Value = api.json(call).await?;
        let found: Vec<T> = parse_list(&v, &named.plural, "neutron", &op)?;
        if let Some(x) = found.into_iter().next() {
            if !tags.iter().all(|t| tags_of(&x).contains(t)) {
                let mut all = tags_of(&x).clone();
                all.extend(tags.iter().filter(|t| !tags_of(&x).contains(t)).cloned());
                self.set_tags(resource, id_of(&x), all).await?;
            }
            return Ok(x);
        }
        let op = format!("create {singular}");
        let v: Value = api
            .json(Call::post(Service::Neutron, &[resource], body.clone(), &op))
            .await?;
        let made: T = serde_json::from_value(v.get(singular).cloned().unwrap_or(Value::Null))
            .map_err(|e| OpenStackError::decode("neutron", &op, e.to_string()))?;
        self.set_tags(resource, id_of(&made), tags).await?;
        Ok(made)
    }

    async fn ports(&self, query: &[(&str, String)]) -> OsResult<Vec<Port>> {
        let mut call = Call::get(Service::Neutron, &["ports"], "list ports");
        for (k, v) in query {
            call = call.query(k, v.clone());
        }
        let v: Value = self.api().await?.json(call).await?;
        parse_list(&v, "ports", "neutron", "list ports")
    }

    /// The first IPv4 subnet of network `network_id` (where servers get their address).
    async fn first_ipv4_subnet(&self, network_id: &str) -> OsResult<Option<Subnet>> {
        let v: Value = self
            .api()
            .await?
            .json(
                Call::get(Service::Neutron, &["subnets"], "list subnets")
                    .query("network_id", network_id.to_string())
                    .query("ip_version", "4"),
            )
            .await?;
        let subnets: Vec<Subnet> = parse_list(&v, "subnets", "neutron", "list subnets")?;
        Ok(subnets.into_iter().next())
    }

    async fn security_groups_named(&self, name: &str) -> OsResult<Vec<SecurityGroup>> {
        let v: Value = self
            .api()
            .await?
            .json(Call::get(Service::Neutron, &["security-groups"], "find security group").query("name", name))
            .await?;
        parse_list(&v, "security_groups", "neutron", "find security group")
    }

    /// The network and security group `[openstack]` names, as the inventory
    /// reports them: under their logical keys and marked reused, so a plan
    /// keeps them and destroy leaves them alone. A name that matches nothing
    /// (or several networks) reports nothing here; apply says what is wrong.
    async fn reused_resources(&self) -> OsResult<Vec<CloudResource>> {
        let mut out = Vec::new();
        if let Some(name) = &self.settings.network
            && let [net] = self.networks_named(name, false).await?.as_slice()
        {
            let subnet = self.first_ipv4_subnet(&net.id).await?;
            out.push(reused_network_resource(net, subnet.as_ref()));
        }
        if let Some(name) = &self.settings.security_group
            && let Some(g) = self.security_groups_named(name).await?.first()
        {
            out.push(reused_group_resource(g));
        }
        Ok(out)
    }

    /// Is `r` the network, a subnet of the network, or the security group
    /// that `[openstack]` names? Those are never deleted, whatever their tags
    /// or attributes say.
    async fn is_reused(&self, r: &CloudResource) -> OsResult<bool> {
        let named = |setting: &Option<String>| setting.as_deref().is_some_and(|n| n == r.name || n == r.id);
        Ok(match r.kind {
            ResourceKind::Network => named(&self.settings.network),
            ResourceKind::SecurityGroup => named(&self.settings.security_group),
            ResourceKind::Subnet => match &self.settings.network {
                Some(name) => self
                    .networks_named(name, false)
                    .await?
                    .iter()
                    .any(|n| n.subnets.contains(&r.id)),
                None => false,
            },
            _ => false,
        })
    }

    async fn neutron_delete(&self, resource: &str, id: &str, what: &str) -> OsResult<()> {
        let op = format!("delete {what}");
        // "in use" conflicts clear once Nova has released the ports
        let mut delay = self.poll.first;
        for attempt in 0..8 {
            match self
                .api()
                .await?
                .send(Call::delete(Service::Neutron, &[resource, id], &op))
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if e.is_conflict() && attempt < 7 => {
                    tracing::debug!(resource, id, "delete conflicts ({e}); retrying");
                    tokio::time::sleep(delay).await;
                    delay = self.poll.next(delay);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn has_cluster_tag(&self, resource: &str, singular: &str, id: &str, cluster: &ClusterRef) -> OsResult<bool> {
        let op = format!("show {singular}");
        match self
            .api()
            .await?
            .json::<Value>(Call::get(Service::Neutron, &[resource, id], &op))
            .await
        {
            Ok(v) => {
                let tags: Vec<String> = v
                    .get(singular)
                    .and_then(|x| x.get("tags"))
                    .and_then(|t| serde_json::from_value(t.clone()).ok())
                    .unwrap_or_default();
                Ok(tags.contains(&cluster_tag(&cluster.name)))
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn remove_router_interfaces(&self, router_id: &str) -> OsResult<()> {
        let ports = self.ports(&[("device_id", router_id.to_string())]).await?;
        for p in ports
            .iter()
            .filter(|p| p.device_owner.starts_with("network:router_interface"))
        {
            for ip in &p.fixed_ips {
                self.remove_router_interface(router_id, &ip.subnet_id).await?;
            }
        }
        Ok(())
    }

    async fn remove_router_interface(&self, router_id: &str, subnet_id: &str) -> OsResult<()> {
        match self
            .api()
            .await?
            .send(Call::put(
                Service::Neutron,
                &["routers", router_id, "remove_router_interface"],
                json!({ "subnet_id": subnet_id }),
                "remove router interface",
            ))
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            r => r,
        }
    }

    // ------------------------------------------------------------ servers

    async fn rename(&self, id: &str, name: &str) -> OsResult<()> {
        self.api()
            .await?
            .send(Call::put(
                Service::Nova,
                &["servers", id],
                json!({ "server": { "name": name } }),
                "rename server",
            ))
            .await
    }

    async fn create_servers(&self, create: &ServerCreate<'_>) -> OsResult<Option<String>> {
        let op = if create.count > 1 {
            "create servers (multiple create)"
        } else {
            "create server"
        };
        let ans: CreateServerAnswer = self
            .api()
            .await?
            .json(Call::post(Service::Nova, &["servers"], create.body(), op).microversion(create.microversion()))
            .await?;
        Ok(match ans {
            CreateServerAnswer::Reservation { reservation_id } => Some(reservation_id),
            CreateServerAnswer::Server { .. } => None,
        })
    }

    async fn wait_server_gone(&self, cluster: &ClusterRef, id: &str) -> OsResult<()> {
        let started = Instant::now();
        let limit = Duration::from_secs(900);
        let mut delay = self.poll.first;
        loop {
            tokio::time::sleep(delay).await;
            let list = self.cluster_servers(cluster, self.poll.first).await?;
            match list.iter().find(|s| s.id == id) {
                None => return Ok(()),
                Some(s) if s.status == "DELETED" => return Ok(()),
                Some(s) if s.status == "ERROR" && started.elapsed() > Duration::from_secs(60) => {
                    // a delete that failed leaves the server in ERROR: ask again
                    match self
                        .api()
                        .await?
                        .send(Call::delete(Service::Nova, &["servers", id], "delete server"))
                        .await
                    {
                        Err(e) if !e.is_not_found() => return Err(e),
                        _ => {}
                    }
                }
                Some(_) => {}
            }
            if started.elapsed() > limit {
                return Err(OpenStackError::Timeout {
                    what: format!("server {id} to be deleted"),
                    after: limit,
                });
            }
            delay = self.poll.next(delay);
        }
    }

    async fn detach(&self, server_id: &str, volume_id: &str) -> OsResult<()> {
        match self
            .api()
            .await?
            .send(Call::delete(
                Service::Nova,
                &["servers", server_id, "os-volume_attachments", volume_id],
                "detach volume",
            ))
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.wait_volume(volume_id, "detach", |v| {
            !v.attachments.iter().any(|a| a.server_id == server_id)
        })
        .await
        .map(|_| ())
    }
}

/// A Neutron resource found by name or created.
struct Named<'a> {
    /// Path segment (`networks`, `security-groups`).
    resource: &'a str,
    /// Key of the body (`network`, `security_group`).
    singular: &'a str,
    /// Key of a list answer (`networks`, `security_groups`).
    plural: String,
    name: &'a str,
    extra_query: Vec<(&'a str, String)>,
    body: Value,
    tags: Vec<String>,
}

fn unknown_flavor(name: &str, flavors: &[Flavor]) -> String {
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

fn parse_list<T: serde::de::DeserializeOwned>(
    v: &Value,
    key: &str,
    service: &'static str,
    op: &str,
) -> OsResult<Vec<T>> {
    serde_json::from_value(v.get(key).cloned().unwrap_or(Value::Array(Vec::new())))
        .map_err(|e| OpenStackError::decode(service, op, e.to_string()))
}

/// A short hex hash, for temporary names.
fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    format!("{h:08x}")
}

/// How to create the missing indices of a group: one multiple-create with
/// Nova's default names when they are `1..=k`, else under a temporary name
/// whose `-<i>` suffixes are renamed afterwards.
#[derive(Debug, PartialEq, Eq)]
pub enum CreatePlan {
    /// One server with its final name.
    Single { index: u32 },
    /// `name` with `min_count = max_count = count`; Nova names them `name-1..count`.
    Contiguous { count: u32 },
    /// Multiple create under a temporary name, then renamed to `indices`.
    Renamed { indices: Vec<u32> },
}

impl CreatePlan {
    pub fn for_missing(missing: &[u32]) -> Option<CreatePlan> {
        match missing {
            [] => None,
            [one] => Some(CreatePlan::Single { index: *one }),
            many if many.iter().enumerate().all(|(i, &x)| x == i as u32 + 1) => Some(CreatePlan::Contiguous {
                count: many.len() as u32,
            }),
            many => Some(CreatePlan::Renamed { indices: many.to_vec() }),
        }
    }
}

/// The `-<n>` suffix Nova gave a server of a multiple create named `base`.
fn suffix_index(base: &str, name: &str) -> Option<u32> {
    name.strip_prefix(base)?.strip_prefix('-')?.parse().ok()
}

#[async_trait]
impl CloudProvider for OpenStackProvider {
    fn name(&self) -> &str {
        "openstack"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            multi_create: true,
            max_batch: 1000,
            fixed_private_ip: true,
            load_balancer: false,
            shared_file_system: false,
            public_ip_at_create: false,
            custom_dns_servers: true,
        }
    }

    async fn preflight(&self, cluster: &ClusterRef, spec: &ClusterSpec) -> Result<Vec<(String, String)>> {
        Ok(self.preflight_checks(cluster, spec).await?)
    }

    async fn ensure_image(&self, _cluster: &ClusterRef, image: &ImageSpec) -> Result<CloudResource> {
        Ok(self.image(image).await?)
    }

    async fn ensure_network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> Result<NetworkInfo> {
        Ok(self.network(cluster, request).await?)
    }

    async fn ensure_security_group(
        &self,
        cluster: &ClusterRef,
        _network: &NetworkInfo,
        request: &SecurityGroupRequest,
    ) -> Result<CloudResource> {
        Ok(self.security_group(cluster, request).await?)
    }

    async fn ensure_key_pair(&self, cluster: &ClusterRef, public_key: &str) -> Result<CloudResource> {
        Ok(self.key_pair(cluster, public_key).await?)
    }

    async fn create_instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> Result<Vec<CloudResource>> {
        Ok(self.instances(cluster, batch).await?)
    }

    async fn wait_instances(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
    ) -> Result<Vec<CloudResource>> {
        Ok(self.wait(cluster, instances, timeout).await?)
    }

    async fn create_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> Result<CloudResource> {
        Ok(self.new_volume(cluster, request).await?)
    }

    async fn attach_volume(
        &self,
        _cluster: &ClusterRef,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        Ok(self.attach(key, volume, instance).await?)
    }

    async fn allocate_public_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> Result<CloudResource> {
        Ok(self.allocate_ip(cluster, key, name).await?)
    }

    async fn associate_public_ip(
        &self,
        _cluster: &ClusterRef,
        ip: &CloudResource,
        instance: &CloudResource,
    ) -> Result<CloudResource> {
        Ok(self.associate(ip, instance).await?)
    }

    async fn inventory(&self, cluster: &ClusterRef) -> Result<Vec<CloudResource>> {
        Ok(self.list_inventory(cluster).await?)
    }

    async fn delete(&self, cluster: &ClusterRef, resource: &CloudResource) -> Result<()> {
        Ok(self.remove(cluster, resource).await?)
    }
}

impl OpenStackProvider {
    async fn preflight_checks(&self, cluster: &ClusterRef, spec: &ClusterSpec) -> OsResult<Vec<(String, String)>> {
        let mut problems = Vec::new();
        let flavors = self.flavors().await?;
        let existing = self.list_servers(cluster, None).await?;
        let existing_names: BTreeSet<&str> = existing.iter().map(|s| s.name.as_str()).collect();
        let (mut instances, mut cores, mut ram, mut gigabytes, mut volumes, mut ips) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for g in spec.nodes.iter().filter(|g| g.count > 0) {
            let flavor = flavors.iter().find(|f| f.name == g.flavor || f.id == g.flavor);
            if flavor.is_none() {
                problems.push((format!("nodes.{}.flavor", g.role), unknown_flavor(&g.flavor, &flavors)));
            }
            let missing = (1..=g.count)
                .filter(|i| !existing_names.contains(spec.node_name(g.role, *i).as_str()))
                .count() as u64;
            instances += missing;
            if let Some(f) = flavor {
                cores += missing * f.vcpus;
                ram += missing * f.ram;
                if self.settings.boot_from_volume {
                    let size = g.root_disk_gb.map(u64::from).unwrap_or(f.disk);
                    if size == 0 {
                        problems.push((
                            format!("nodes.{}.root_disk_gb", g.role),
                            format!(
                                "openstack.boot_from_volume needs a root disk size and flavor \"{}\" has none; set nodes.{}.root_disk_gb",
                                f.name, g.role
                            ),
                        ));
                    }
                    gigabytes += missing * size;
                    volumes += missing;
                }
            }
            if let Some(v) = g.volume_gb {
                gigabytes += missing * u64::from(v);
                volumes += missing;
            }
            if g.public_ip {
                ips += missing;
            }
        }
        // image
        let images = self.images_named(&spec.image.name).await?;
        if !images
            .iter()
            .any(|i| matches!(i.status.as_str(), "active" | "queued" | "saving" | "importing"))
        {
            match &spec.image.source {
                None => problems.push((
                    "image.name".into(),
                    format!(
                        "image \"{}\" does not exist on this cloud and image.source is not set; upload it or set image.source to a URL the cloud can download",
                        spec.image.name
                    ),
                )),
                Some(_) => match self.import_methods().await {
                    Ok(m) if m.iter().any(|x| x == "web-download") => {}
                    Ok(m) => problems.push((
                        "image.source".into(),
                        format!(
                            "image \"{}\" must be imported but this cloud's Glance does not offer web-download (it offers: {}); upload the image yourself",
                            spec.image.name,
                            if m.is_empty() { "nothing".into() } else { m.join(", ") }
                        ),
                    )),
                    Err(e) if e.is_not_found() => problems.push((
                        "image.source".into(),
                        format!(
                            "image \"{}\" must be imported but this cloud's Glance has no interoperable image import; upload the image yourself",
                            spec.image.name
                        ),
                    )),
                    Err(e) => return Err(e),
                },
            }
        }
        // networks
        if self.settings.network.is_none() {
            if let Err(OpenStackError::Input { field, message }) = self
                .external_network(&self.settings.external_network, "openstack.external_network")
                .await
            {
                problems.push((field, message));
            }
        } else if let Some(n) = &self.settings.network
            && self.networks_named(n, false).await?.is_empty()
        {
            problems.push((
                "openstack.network".into(),
                format!("network \"{n}\" does not exist on this cloud"),
            ));
        }
        if ips > 0 && (self.settings.floating_ip_pool.is_some() || self.settings.network.is_some()) {
            let field = if self.settings.floating_ip_pool.is_some() {
                "openstack.floating_ip_pool"
            } else {
                "openstack.external_network"
            };
            if let Err(OpenStackError::Input { field, message }) =
                self.external_network(self.settings.pool(), field).await
            {
                problems.push((field, message));
            }
        }
        if let Some(g) = &self.settings.security_group
            && self.security_groups_named(g).await?.is_empty()
        {
            problems.push((
                "openstack.security_group".into(),
                format!("security group \"{g}\" does not exist in this project"),
            ));
        }
        // quotas
        let api = self.api().await?;
        let limits: Limits = api
            .json(Call::get(Service::Nova, &["limits"], "read compute limits"))
            .await?;
        let quota = |what: &str, need: u64, pair: Option<(u64, u64)>, unit: &str| -> Option<String> {
            let (max, used) = pair?;
            let left = max.saturating_sub(used);
            (need > left).then(|| {
                format!(
                    "needs {need}{unit} more {what} but the project's quota leaves {left}{unit} ({used} of {max} used); lower the node counts or ask the cloud's operators for more quota"
                )
            })
        };
        for (what, need, pair, unit) in [
            (
                "instances",
                instances,
                limits.pair("maxTotalInstances", "totalInstancesUsed"),
                "",
            ),
            ("vCPUs", cores, limits.pair("maxTotalCores", "totalCoresUsed"), ""),
            ("RAM", ram, limits.pair("maxTotalRAMSize", "totalRAMUsed"), " MiB"),
        ] {
            if let Some(m) = quota(what, need, pair, unit) {
                problems.push(("nodes".into(), m));
            }
        }
        if gigabytes > 0 {
            match api
                .json::<Limits>(Call::get(Service::Cinder, &["limits"], "read volume limits"))
                .await
            {
                Ok(l) => {
                    let field = spec
                        .nodes
                        .iter()
                        .find(|g| g.count > 0 && g.volume_gb.is_some())
                        .map(|g| format!("nodes.{}.volume_gb", g.role))
                        .unwrap_or_else(|| "openstack.boot_from_volume".into());
                    if let Some(m) = quota(
                        "volume storage",
                        gigabytes,
                        l.pair("maxTotalVolumeGigabytes", "totalGigabytesUsed"),
                        " GB",
                    ) {
                        problems.push((field.clone(), m));
                    }
                    if let Some(m) = quota("volumes", volumes, l.pair("maxTotalVolumes", "totalVolumesUsed"), "") {
                        problems.push((field, m));
                    }
                }
                Err(e) if e.status().is_some_and(|s| s < 500) => {
                    tracing::debug!("volume limits unreadable: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        if ips > 0 {
            let project = api.project_id().await?;
            match api
                .json::<NeutronQuotaDetails>(Call::get(
                    Service::Neutron,
                    &["quotas", &project, "details"],
                    "read network quotas",
                ))
                .await
            {
                Ok(q) => {
                    if let Some(d) = q.quota.get("floatingip").filter(|d| d.limit >= 0) {
                        let left = (d.limit - d.used - d.reserved).max(0) as u64;
                        if ips > left {
                            let field = spec
                                .nodes
                                .iter()
                                .find(|g| g.count > 0 && g.public_ip)
                                .map(|g| format!("nodes.{}.public_ip", g.role))
                                .unwrap_or_else(|| "nodes".into());
                            problems.push((
                                field,
                                format!(
                                    "needs {ips} more floating IPs but the project's quota leaves {left} ({} of {} used); release unused floating IPs or ask for more quota",
                                    d.used, d.limit
                                ),
                            ));
                        }
                    }
                }
                Err(e) if e.status().is_some_and(|s| s < 500) => tracing::debug!("network quotas unreadable: {e}"),
                Err(e) => return Err(e),
            }
        }
        Ok(problems)
    }

    async fn image(&self, image: &ImageSpec) -> OsResult<CloudResource> {
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
                let done = self.wait_image(&i.id, &image.name).await?;
                return Ok(to_resource(&done));
            }
        }
        let Some(source) = &image.source else {
            return Err(OpenStackError::Input {
                field: "image.name".into(),
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
            return Err(OpenStackError::Input {
                field: "image.source".into(),
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
                let made: Image = api
                    .json(Call::post(
                        Service::Glance,
                        &["images"],
                        json!({ "name": image.name, "disk_format": format, "container_format": "bare", "visibility": "private" }),
                        "create image",
                    ))
                    .await?;
                made.id
            }
        };
        api.send(Call::post(
            Service::Glance,
            &["images", &id, "import"],
            json!({ "method": { "name": "web-download", "uri": source } }),
            "import image (web-download)",
        ))
        .await?;
        self.events
            .progress("image", format!("importing {} from {source}", image.name));
        let done = self.wait_image(&id, &image.name).await?;
        Ok(to_resource(&done))
    }

    async fn network(&self, cluster: &ClusterRef, request: &NetworkRequest) -> OsResult<NetworkInfo> {
        if let Some(name) = &self.settings.network {
            let nets = self.networks_named(name, false).await?;
            let net = match nets.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(OpenStackError::Input {
                        field: "openstack.network".into(),
                        message: format!("network \"{name}\" does not exist on this cloud"),
                    });
                }
                _ => {
                    return Err(OpenStackError::Input {
                        field: "openstack.network".into(),
                        message: format!("{} networks are called \"{name}\"; rename one of them", nets.len()),
                    });
                }
            };
            let Some(subnet) = self.first_ipv4_subnet(&net.id).await? else {
                return Err(OpenStackError::Input {
                    field: "openstack.network".into(),
                    message: format!("network \"{name}\" has no IPv4 subnet"),
                });
            };
            let cidr: Ipv4Cidr = subnet.cidr.parse().map_err(|e: String| OpenStackError::Input {
                field: "openstack.network".into(),
                message: format!("subnet {} of network \"{name}\": {e}", subnet.name),
            })?;
            let r = reused_network_resource(&net, Some(&subnet));
            return Ok(NetworkInfo { network: r, cidr });
        }
        let c = &cluster.name;
        let tags = |key: &str| vec![cluster_tag(c), key_tag(key)];
        let net_name = network_name(c);
        let net: Network = self
            .ensure_named(
                Named {
                    resource: "networks",
                    singular: "network",
                    plural: "networks".into(),
                    name: &net_name,
                    extra_query: vec![],
                    body: json!({ "network": { "name": net_name, "admin_state_up": true, "description": format!("vre cluster {c}") } }),
                    tags: tags("network"),
                },
                |n: &Network| &n.tags,
                |n: &Network| &n.id,
            )
            .await?;
        let subnet_name = format!("{c}-subnet");
        let dns: Vec<String> = request
            .dns_servers
            .iter()
            .filter(|d| d.is_ipv4())
            .map(|d| d.to_string())
            .collect();
        let pools: Vec<Value> = allocation_pools(&request.cidr, self.master_ip(&request.cidr))
            .into_iter()
            .map(|(a, b)| json!({ "start": a.to_string(), "end": b.to_string() }))
            .collect();
        let subnet: Subnet = self
            .ensure_named(
                Named {
                    resource: "subnets",
                    singular: "subnet",
                    plural: "subnets".into(),
                    name: &subnet_name,
                    extra_query: vec![("network_id", net.id.clone())],
                    body: json!({ "subnet": {
                    "name": subnet_name, "network_id": net.id, "ip_version": 4, "cidr": request.cidr.to_string(),
                    "dns_nameservers": dns, "allocation_pools": pools, "enable_dhcp": true,
                } }),
                    tags: tags("network"),
                },
                |s: &Subnet| &s.tags,
                |s: &Subnet| &s.id,
            )
            .await?;
        let ext = self
            .external_network(&self.settings.external_network, "openstack.external_network")
            .await?;
        let router_name = format!("{c}-router");
        let router: Router = self
            .ensure_named(
                Named {
                    resource: "routers",
                    singular: "router",
                    plural: "routers".into(),
                    name: &router_name,
                    extra_query: vec![],
                    body: json!({ "router": { "name": router_name, "admin_state_up": true, "external_gateway_info": { "network_id": ext.id } } }),
                    tags: tags("network"),
                },
                |r: &Router| &r.tags,
                |r: &Router| &r.id,
            )
            .await?;
        let ports = self
            .ports(&[("device_id", router.id.clone()), ("network_id", net.id.clone())])
            .await?;
        if !ports
            .iter()
            .any(|p| p.fixed_ips.iter().any(|f| f.subnet_id == subnet.id))
        {
            match self
                .api()
                .await?
                .send(Call::put(
                    Service::Neutron,
                    &["routers", &router.id, "add_router_interface"],
                    json!({ "subnet_id": subnet.id }),
                    "add router interface",
                ))
                .await
            {
                Ok(()) => {}
                // a concurrent or earlier add already made it
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        let cidr: Ipv4Cidr = subnet
            .cidr
            .parse()
            .map_err(|e: String| OpenStackError::decode("neutron", "create subnet", e))?;
        let r = CloudResource::new(ResourceKind::Network, &net.id, &net.name)
            .with_attr(attr::SUBNET_ID, subnet.id.clone())
            .with_attr(attr::CIDR, cidr.to_string())
            .with_attr(ROUTER_ID, router.id.clone());
        Ok(NetworkInfo { network: r, cidr })
    }

    async fn security_group(&self, cluster: &ClusterRef, request: &SecurityGroupRequest) -> OsResult<CloudResource> {
        let api = self.api().await?;
        if let Some(name) = &self.settings.security_group {
            let found = self.security_groups_named(name).await?;
            let Some(g) = found.first() else {
                return Err(OpenStackError::Input {
                    field: "openstack.security_group".into(),
                    message: format!("security group \"{name}\" does not exist in this project"),
                });
            };
            return Ok(reused_group_resource(g));
        }
        let c = &cluster.name;
        let name = security_group_name(c);
        let g: SecurityGroup = self
            .ensure_named(
                Named {
                    resource: "security-groups",
                    singular: "security_group",
                    plural: "security_groups".into(),
                    name: &name,
                    extra_query: vec![],
                    body: json!({ "security_group": { "name": name, "description": format!("vre cluster {c}: all traffic between nodes, ingress ports from anywhere") } }),
                    tags: vec![cluster_tag(c), key_tag(ResourceKey::security_group().as_str())],
                },
                |g: &SecurityGroup| &g.tags,
                |g: &SecurityGroup| &g.id,
            )
            .await?;
        // the rules as they are now (a created group's answer has the defaults only)
        let v: Value = api
            .json(
                Call::get(Service::Neutron, &["security-group-rules"], "list rules")
                    .query("security_group_id", g.id.clone()),
            )
            .await?;
        let have: Vec<SecurityGroupRule> = parse_list(&v, "security_group_rules", "neutron", "list rules")?;
        let mut wanted = vec![WantedRule {
            protocol: None,
            ports: None,
            remote_ip_prefix: None,
            remote_group_id: Some(g.id.clone()),
        }];
        for p in &request.ingress_ports {
            wanted.push(WantedRule {
                protocol: Some("tcp"),
                ports: Some((p.from, p.to)),
                remote_ip_prefix: Some("0.0.0.0/0".into()),
                remote_group_id: None,
            });
        }
        for w in wanted.iter().filter(|w| !have.iter().any(|h| w.matches(h))) {
            match api
                .send(Call::post(
                    Service::Neutron,
                    &["security-group-rules"],
                    w.body(&g.id),
                    "add rule",
                ))
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(CloudResource::new(ResourceKind::SecurityGroup, &g.id, &g.name))
    }

    async fn key_pair(&self, cluster: &ClusterRef, public_key: &str) -> OsResult<CloudResource> {
        let name = key_pair_name(&cluster.name);
        match self.show_key_pair(&name).await? {
            Some(kp) if same_key(&kp.public_key, public_key) => return Ok(key_pair_resource(&kp)),
            // the deployment's key changed (vre init again): replace it
            Some(_) => self.delete_key_pair(&name).await?,
            None => {}
        }
        let made = self
            .api()
            .await?
            .json::<KeyPairOne>(Call::post(
                Service::Nova,
                &["os-keypairs"],
                key_pair_import(&name, public_key),
                "import key pair",
            ))
            .await;
        match made {
            Ok(kp) => Ok(key_pair_resource(&kp.keypair)),
            // made meanwhile (a retry after a lost answer, a concurrent apply)
            Err(e) if e.is_conflict() => match self.show_key_pair(&name).await? {
                Some(kp) => Ok(key_pair_resource(&kp)),
                None => Err(e),
            },
            Err(OpenStackError::Api {
                status: 400, message, ..
            }) => Err(OpenStackError::Input {
                field: "ssh.public_key".into(),
                message: format!("Nova refused the public key: {message}"),
            }),
            Err(e) => Err(e),
        }
    }

    async fn instances(&self, cluster: &ClusterRef, batch: &InstanceBatch) -> OsResult<Vec<CloudResource>> {
        let role = batch.role;
        let base = format!("{}-{role}", cluster.name);
        let temp = format!("{base}-b{}", short_hash(&batch.token));
        let mut servers = self.list_servers(cluster, None).await?;
        // servers of an interrupted renamed batch get their final names first
        let wanted: BTreeMap<u32, &str> = batch.instances.iter().map(|i| (i.index, i.name.as_str())).collect();
        let mut missing: Vec<u32> = wanted
            .iter()
            .filter(|(_, name)| !servers.iter().any(|s| s.name == **name))
            .map(|(i, _)| *i)
            .collect();
        let mut leftovers: Vec<&Server> = servers
            .iter()
            .filter(|s| suffix_index(&temp, &s.name).is_some())
            .collect();
        leftovers.sort_by_key(|s| suffix_index(&temp, &s.name));
        let mut renamed = false;
        for (s, i) in leftovers.into_iter().zip(missing.clone()) {
            self.rename(&s.id, wanted[&i]).await?;
            missing.retain(|m| *m != i);
            renamed = true;
        }
        if let Some(plan) = CreatePlan::for_missing(&missing) {
            let flavor = self.flavor(role, &batch.flavor).await?;
            let boot_volume_gb = if self.settings.boot_from_volume {
                let size = batch.root_disk_gb.map(u64::from).unwrap_or(flavor.disk);
                if size == 0 {
                    return Err(OpenStackError::Input {
                        field: format!("nodes.{role}.root_disk_gb"),
                        message: "openstack.boot_from_volume needs a root disk size; set it".into(),
                    });
                }
                Some(size as u32)
            } else {
                None
            };
            let fixed_ip = |i: u32| batch.instances.iter().find(|r| r.index == i).and_then(|r| r.fixed_ip);
            let (name, count, ip) = match &plan {
                CreatePlan::Single { index } => (wanted[index].to_string(), 1, fixed_ip(*index)),
                CreatePlan::Contiguous { count } => (base.clone(), *count, None),
                CreatePlan::Renamed { indices } => (temp.clone(), indices.len() as u32, None),
            };
            let create = ServerCreate {
                name: &name,
                flavor_id: &flavor.id,
                image_id: &batch.image.id,
                network_id: &batch.network.network.id,
                fixed_ip: ip,
                security_group: &batch.security_group.id,
                key_name: &batch.key_pair.name,
                user_data: &batch.user_data,
                cluster: &cluster.name,
                role: role.as_str(),
                count,
                availability_zone: self.settings.availability_zone.as_deref(),
                boot_volume_gb,
                volume_type: self.settings.volume_type.as_deref(),
            };
            self.events.progress(
                &format!("servers/{role}"),
                match count {
                    1 => format!("creating {name}"),
                    n => format!("creating {n} {role} servers in one request"),
                },
            );
            let reservation = match self.create_servers(&create).await {
                Ok(r) => r,
                Err(OpenStackError::Api {
                    status: 400, message, ..
                }) if message.to_lowercase().contains("flavor") => {
                    return Err(OpenStackError::Input {
                        field: format!("nodes.{role}.flavor"),
                        message,
                    });
                }
                Err(OpenStackError::Api {
                    status: 403 | 413,
                    message,
                    ..
                }) if message.to_lowercase().contains("quota") => {
                    return Err(OpenStackError::Input {
                        field: format!("nodes.{role}.count"),
                        message: format!("{message}; lower the count or ask for more quota"),
                    });
                }
                Err(e) => return Err(e),
            };
            if let Some(r) = &reservation {
                // names Nova chose, fixed when its template is not `<name>-<i>`
                let made = self.list_servers(cluster, Some(r)).await?;
                let targets: Vec<u32> = match &plan {
                    CreatePlan::Renamed { indices } => indices.clone(),
                    CreatePlan::Contiguous { count } => (1..=*count).collect(),
                    CreatePlan::Single { index } => vec![*index],
                };
                let mut made: Vec<&Server> = made.iter().collect();
                made.sort_by(|a, b| {
                    suffix_index(&name, &a.name)
                        .cmp(&suffix_index(&name, &b.name))
                        .then(a.name.cmp(&b.name))
                });
                for (s, i) in made.into_iter().zip(targets) {
                    if s.name != wanted[&i] {
                        self.rename(&s.id, wanted[&i]).await?;
                    }
                }
            }
            servers = self.list_servers(cluster, None).await?;
        } else if renamed {
            servers = self.list_servers(cluster, None).await?;
        }
        let mut out = Vec::new();
        for s in servers.iter().filter(|s| wanted.values().any(|n| *n == s.name)) {
            out.push(self.server_resource(cluster, s).await?);
        }
        Ok(out)
    }

    async fn wait(
        &self,
        cluster: &ClusterRef,
        instances: &[CloudResource],
        timeout: Duration,
    ) -> OsResult<Vec<CloudResource>> {
        let started = Instant::now();
        let mut delay = self.poll.first;
        let step = instances
            .iter()
            .find_map(|r| r.key.as_ref().and_then(|k| k.node()))
            .map(|(r, _)| format!("servers/{r}"))
            .unwrap_or_else(|| "servers".into());
        loop {
            let mut list = self.cluster_servers(cluster, self.poll.first).await?;
            if instances.iter().any(|w| !list.iter().any(|s| s.id == w.id)) {
                // created after the shared listing was taken: list afresh before judging
                list = self.cluster_servers(cluster, Duration::ZERO).await?;
            }
            let mut out = Vec::with_capacity(instances.len());
            let mut pending = 0u64;
            for want in instances {
                let r = match list.iter().find(|s| s.id == want.id) {
                    Some(s) => self.server_resource(cluster, s).await?,
                    None => want.clone().with_status(ResourceStatus::Failed {
                        reason: "the server disappeared while booting (deleted outside vre?)".into(),
                    }),
                };
                if r.status == ResourceStatus::Pending {
                    pending += 1;
                }
                out.push(r);
            }
            let total = instances.len() as u64;
            self.events
                .count(&step, "servers ACTIVE or failed", total - pending, total);
            if pending == 0 {
                return Ok(out);
            }
            if started.elapsed() > timeout {
                return Err(OpenStackError::Timeout {
                    what: format!("{pending} of {total} servers to become ACTIVE"),
                    after: timeout,
                });
            }
            tokio::time::sleep(delay).await;
            delay = self.poll.next(delay);
        }
    }

    async fn new_volume(&self, cluster: &ClusterRef, request: &VolumeRequest) -> OsResult<CloudResource> {
        let existing = self.volumes(cluster).await?;
        let found = existing
            .iter()
            .find(|v| v.meta(KEY_TAG) == Some(request.key.as_str()) && v.status != "deleting");
        let id = match found {
            Some(v) => v.id.clone(),
            None => {
                let mut vol = json!({
                    "size": request.size_gb,
                    "name": request.name,
                    "description": format!("vre cluster {}", cluster.name),
                    "metadata": { CLUSTER_TAG: cluster.name, KEY_TAG: request.key.as_str() },
                });
                if let Some(t) = &self.settings.volume_type {
                    vol["volume_type"] = json!(t);
                }
                if let Some(az) = &self.settings.availability_zone {
                    vol["availability_zone"] = json!(az);
                }
                let made: VolumeOne = match self
                    .api()
                    .await?
                    .json(Call::post(
                        Service::Cinder,
                        &["volumes"],
                        json!({ "volume": vol }),
                        "create volume",
                    ))
                    .await
                {
                    Ok(v) => v,
                    Err(OpenStackError::Api {
                        status: 413 | 403,
                        message,
                        ..
                    }) => {
                        let role = request.key.node().map_or(Role::Storage, |n| n.0);
                        return Err(OpenStackError::Input {
                            field: format!("nodes.{role}.volume_gb"),
                            message: format!("{message}; lower the size or count, or ask for more quota"),
                        });
                    }
                    Err(e) => return Err(e),
                };
                made.volume.id
            }
        };
        let v = self
            .wait_volume(&id, "become available", |v| {
                v.status == "available" || v.status == "in-use"
            })
            .await?
            .ok_or_else(|| OpenStackError::Failed {
                service: "cinder",
                operation: "create volume".into(),
                message: format!("volume {} vanished while it was being created", request.name),
            })?;
        Ok(self.volume_resource(&v).with_key(request.key.clone()))
    }

    async fn attach(
        &self,
        key: &ResourceKey,
        volume: &CloudResource,
        instance: &CloudResource,
    ) -> OsResult<CloudResource> {
        let v = self.volume(&volume.id).await?;
        if !v.attachments.iter().any(|a| a.server_id == instance.id) {
            match self
                .api()
                .await?
                .json::<VolumeAttachmentOne>(Call::post(
                    Service::Nova,
                    &["servers", &instance.id, "os-volume_attachments"],
                    json!({ "volumeAttachment": { "volumeId": volume.id } }),
                    "attach volume",
                ))
                .await
            {
                Ok(a) => {
                    tracing::debug!(device = ?a.volume_attachment.device, server = %a.volume_attachment.server_id, volume = %a.volume_attachment.volume_id, "attached")
                }
                // attached meanwhile (a retry after a lost answer)
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        let v = self
            .wait_volume(&volume.id, "attach", |v| {
                v.status == "in-use" && v.attachments.iter().any(|a| a.server_id == instance.id)
            })
            .await?
            .ok_or_else(|| OpenStackError::Failed {
                service: "cinder",
                operation: "attach volume".into(),
                message: format!("volume {} vanished while being attached", volume.name),
            })?;
        let a = v
            .attachments
            .iter()
            .find(|a| a.server_id == instance.id)
            .expect("waited for this attachment");
        Ok(self.attachment_resource(&v, a).with_key(key.clone()))
    }

    async fn allocate_ip(&self, cluster: &ClusterRef, key: &ResourceKey, name: &str) -> OsResult<CloudResource> {
        let api = self.api().await?;
        let tags = vec![cluster_tag(&cluster.name), key_tag(key.as_str())];
        let v: Value = api
            .json(Call::get(Service::Neutron, &["floatingips"], "find floating IP").query("tags", tags.join(",")))
            .await?;
        let found: Vec<FloatingIp> = parse_list(&v, "floatingips", "neutron", "find floating IP")?;
        if let Some(f) = found.first() {
            return Ok(self.floating_ip_resource(f, Some(name)).with_key(key.clone()));
        }
        // one allocated by an interrupted earlier call, before it was tagged
        let v: Value = api
            .json(Call::get(Service::Neutron, &["floatingips"], "find floating IP").query("description", name))
            .await?;
        let untagged: Vec<FloatingIp> = parse_list(&v, "floatingips", "neutron", "find floating IP")?;
        let fip = match untagged
            .into_iter()
            .find(|f| f.description == name && f.tags.is_empty())
        {
            Some(f) => f,
            None => {
                let field = if self.settings.floating_ip_pool.is_some() {
                    "openstack.floating_ip_pool"
                } else {
                    "openstack.external_network"
                };
                let pool = self.external_network(self.settings.pool(), field).await?;
                let v: Value = match api
                    .json(Call::post(
                        Service::Neutron,
                        &["floatingips"],
                        json!({ "floatingip": { "floating_network_id": pool.id, "description": name } }),
                        "allocate floating IP",
                    ))
                    .await
                {
                    Ok(v) => v,
                    Err(OpenStackError::Api {
                        status: 409,
                        code,
                        message,
                        ..
                    }) if code.as_deref() == Some("OverQuota") || message.contains("Quota") => {
                        let role = key.node().map_or(Role::Edge, |n| n.0);
                        return Err(OpenStackError::Input {
                            field: format!("nodes.{role}.public_ip"),
                            message: format!("{message}; release unused floating IPs or ask for more quota"),
                        });
                    }
                    Err(e) => return Err(e),
                };
                serde_json::from_value(v.get("floatingip").cloned().unwrap_or(Value::Null))
                    .map_err(|e| OpenStackError::decode("neutron", "allocate floating IP", e.to_string()))?
            }
        };
        self.set_tags("floatingips", &fip.id, tags.clone()).await?;
        let mut fip = fip;
        fip.tags = tags;
        Ok(self.floating_ip_resource(&fip, Some(name)).with_key(key.clone()))
    }

    async fn associate(&self, ip: &CloudResource, instance: &CloudResource) -> OsResult<CloudResource> {
        let ports = self.ports(&[("device_id", instance.id.clone())]).await?;
        let private = instance.attr(attr::PRIVATE_IP);
        let port = ports
            .iter()
            .find(|p| private.is_some_and(|ip| p.fixed_ips.iter().any(|f| f.ip_address == ip)))
            .or(ports.first())
            .ok_or_else(|| OpenStackError::Failed {
                service: "neutron",
                operation: "associate floating IP".into(),
                message: format!("server {} has no port to bind {} to", instance.name, ip.name),
            })?;
        let api = self.api().await?;
        let v: Value = api
            .json(Call::get(
                Service::Neutron,
                &["floatingips", &ip.id],
                "show floating IP",
            ))
            .await?;
        let current: FloatingIp = serde_json::from_value(v.get("floatingip").cloned().unwrap_or(Value::Null))
            .map_err(|e| OpenStackError::decode("neutron", "show floating IP", e.to_string()))?;
        let bound = if current.port_id.as_deref() == Some(port.id.as_str()) {
            current
        } else {
            let v: Value = api
                .json(Call::put(
                    Service::Neutron,
                    &["floatingips", &ip.id],
                    json!({ "floatingip": { "port_id": port.id } }),
                    "associate floating IP",
                ))
                .await?;
            serde_json::from_value(v.get("floatingip").cloned().unwrap_or(Value::Null))
                .map_err(|e| OpenStackError::decode("neutron", "associate floating IP", e.to_string()))?
        };
        let mut r = self
            .floating_ip_resource(&bound, Some(&ip.name))
            .with_attr(attr::INSTANCE_ID, instance.id.clone());
        if let Some(k) = &ip.key {
            r = r.with_key(k.clone());
        }
        Ok(r)
    }

    async fn list_inventory(&self, cluster: &ClusterRef) -> OsResult<Vec<CloudResource>> {
        let c = &cluster.name;
        let mut out = Vec::new();
        let servers = self.list_servers(cluster, None).await?;
        {
            let mut cache = self.servers.lock().await;
            cache.insert(c.clone(), (Instant::now(), servers.clone()));
        }
        for s in &servers {
            out.push(self.server_resource(cluster, s).await?);
        }
        let fips: Vec<FloatingIp> = self.list_tagged("floatingips", "floatingips", cluster).await?;
        out.extend(fips.iter().map(|f| self.floating_ip_resource(f, None)));
        for v in self.volumes(cluster).await? {
            for a in &v.attachments {
                out.push(self.attachment_resource(&v, a));
            }
            out.push(self.volume_resource(&v));
        }
        // the network and security group the table names: kept by plans, left by destroy
        let reused = self.reused_resources().await?;
        let not_reused = |id: &str| !reused.iter().any(|r| r.id == id);
        let mut networks: Vec<Network> = self.list_tagged("networks", "networks", cluster).await?;
        networks.retain(|n| not_reused(&n.id));
        let reused_subnets: Vec<&str> = reused.iter().filter_map(|r| r.attr(attr::SUBNET_ID)).collect();
        let mut subnets: Vec<Subnet> = self.list_tagged("subnets", "subnets", cluster).await?;
        subnets.retain(|s| !reused_subnets.contains(&s.id.as_str()));
        let routers: Vec<Router> = self.list_tagged("routers", "routers", cluster).await?;
        let mut groups: Vec<SecurityGroup> = self.list_tagged("security-groups", "security_groups", cluster).await?;
        groups.retain(|g| not_reused(&g.id));
        out.extend(reused.iter().cloned());
        let keyed = |tags: &[String]| tag_value(tags, KEY_TAG).and_then(ResourceKey::parse);
        for n in &networks {
            let mut r = CloudResource::new(ResourceKind::Network, &n.id, &n.name);
            if let Some(k) = keyed(&n.tags) {
                r = r.with_key(k);
            }
            if let Some(s) = subnets.iter().find(|s| s.network_id == n.id) {
                r = r
                    .with_attr(attr::SUBNET_ID, s.id.clone())
                    .with_attr(attr::CIDR, s.cidr.clone());
            }
            out.push(r);
        }
        for s in &subnets {
            out.push(CloudResource::new(ResourceKind::Subnet, &s.id, &s.name).with_attr(attr::CIDR, s.cidr.clone()));
        }
        for r in &routers {
            out.push(CloudResource::new(ResourceKind::Router, &r.id, &r.name));
        }
        let server_ids: BTreeSet<&str> = servers.iter().map(|s| s.id.as_str()).collect();
        let router_ids: BTreeSet<&str> = routers.iter().map(|r| r.id.as_str()).collect();
        let mut seen_ports = BTreeSet::new();
        for n in &networks {
            for p in self.ports(&[("network_id", n.id.clone())]).await? {
                if p.device_owner.starts_with("network:router_interface") && router_ids.contains(p.device_id.as_str()) {
                    for f in &p.fixed_ips {
                        out.push(CloudResource::new(
                            ResourceKind::RouterInterface,
                            format!("{}/{}", p.device_id, f.subnet_id),
                            format!("{c}-router-interface"),
                        ));
                    }
                } else if !p.device_owner.starts_with("network:") && seen_ports.insert(p.id.clone()) {
                    out.push(port_resource(&p));
                }
            }
        }
        if self.settings.network.is_some() && !server_ids.is_empty() {
            // a reused network: only the ports of the cluster's servers are ours
            for id in &server_ids {
                for p in self.ports(&[("device_id", id.to_string())]).await? {
                    if seen_ports.insert(p.id.clone()) {
                        out.push(port_resource(&p));
                    }
                }
            }
        }
        for g in &groups {
            let mut r = CloudResource::new(ResourceKind::SecurityGroup, &g.id, &g.name);
            if let Some(k) = keyed(&g.tags) {
                r = r.with_key(k);
            }
            out.push(r);
        }
        if let Some(kp) = self.show_key_pair(&key_pair_name(c)).await? {
            out.push(key_pair_resource(&kp).with_key(ResourceKey::key_pair()));
        }
        Ok(out)
    }

    async fn remove(&self, cluster: &ClusterRef, r: &CloudResource) -> OsResult<()> {
        // defence in depth: the engine never asks for these, a state file written
        // before they were marked, or a caller of this library, might
        if r.attr(attr::REUSED).is_some() || self.is_reused(r).await? {
            tracing::debug!(kind = %r.kind, name = %r.name, id = %r.id, "not deleting a reused resource");
            return Ok(());
        }
        let api = self.api().await?;
        let not_found_ok = |res: OsResult<()>| match res {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        };
        match &r.kind {
            ResourceKind::PublicIp => self.neutron_delete("floatingips", &r.id, "floating IP").await,
            ResourceKind::VolumeAttachment => {
                let (server, volume) = r.id.split_once('/').ok_or_else(|| {
                    OpenStackError::decode(
                        "nova",
                        "detach volume",
                        format!("attachment id \"{}\" is not <server>/<volume>", r.id),
                    )
                })?;
                self.detach(server, volume).await
            }
            ResourceKind::Instance => {
                not_found_ok(
                    api.send(Call::delete(Service::Nova, &["servers", &r.id], "delete server"))
                        .await,
                )?;
                self.wait_server_gone(cluster, &r.id).await
            }
            ResourceKind::Volume => {
                let v = match self.volume(&r.id).await {
                    Ok(v) => v,
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) => return Err(e),
                };
                for a in &v.attachments {
                    self.detach(&a.server_id, &v.id).await?;
                }
                not_found_ok(
                    api.send(Call::delete(Service::Cinder, &["volumes", &r.id], "delete volume"))
                        .await,
                )?;
                self.wait_volume(&r.id, "be deleted", |_| false).await.map(|_| ())
            }
            ResourceKind::Port => self.neutron_delete("ports", &r.id, "port").await,
            ResourceKind::RouterInterface => {
                let (router, subnet) = r.id.split_once('/').ok_or_else(|| {
                    OpenStackError::decode(
                        "neutron",
                        "remove router interface",
                        format!("id \"{}\" is not <router>/<subnet>", r.id),
                    )
                })?;
                self.remove_router_interface(router, subnet).await
            }
            ResourceKind::Router => {
                if !self.has_cluster_tag("routers", "router", &r.id, cluster).await? {
                    return Ok(());
                }
                self.remove_router_interfaces(&r.id).await?;
                self.neutron_delete("routers", &r.id, "router").await
            }
            ResourceKind::Subnet => {
                if !self.has_cluster_tag("subnets", "subnet", &r.id, cluster).await? {
                    return Ok(());
                }
                self.neutron_delete("subnets", &r.id, "subnet").await
            }
            ResourceKind::SecurityGroup => {
                if !self
                    .has_cluster_tag("security-groups", "security_group", &r.id, cluster)
                    .await?
                {
                    return Ok(());
                }
                self.neutron_delete("security-groups", &r.id, "security group").await
            }
            ResourceKind::Network => {
                if !self.has_cluster_tag("networks", "network", &r.id, cluster).await? {
                    return Ok(());
                }
                // leftover ports (a server deleted outside vre, a router still attached)
                for p in self.ports(&[("network_id", r.id.clone())]).await? {
                    if p.device_owner.starts_with("network:router_interface") {
                        for f in &p.fixed_ips {
                            self.remove_router_interface(&p.device_id, &f.subnet_id).await?;
                        }
                    } else if p.device_owner != "network:dhcp" {
                        self.neutron_delete("ports", &p.id, "port").await?;
                    }
                }
                self.neutron_delete("networks", &r.id, "network").await
            }
            ResourceKind::KeyPair => self.delete_key_pair(&r.name).await,
            ResourceKind::Image => not_found_ok(
                api.send(Call::delete(Service::Glance, &["images", &r.id], "delete image"))
                    .await,
            ),
            other => Err(OpenStackError::Failed {
                service: "openstack",
                operation: "delete".into(),
                message: format!(
                    "vre does not make {other} resources on OpenStack; delete {} ({}) by hand",
                    r.name, r.id
                ),
            }),
        }
    }
}

/// The network `[openstack] network` names: the cluster uses it without owning it.
fn reused_network_resource(net: &Network, subnet: Option<&Subnet>) -> CloudResource {
    let mut r = CloudResource::new(ResourceKind::Network, &net.id, &net.name)
        .with_key(ResourceKey::network())
        .with_attr(attr::REUSED, "true");
    if let Some(s) = subnet {
        r = r
            .with_attr(attr::SUBNET_ID, s.id.clone())
            .with_attr(attr::CIDR, s.cidr.clone());
    }
    r
}

/// The security group `[openstack] security_group` names (used, not owned).
fn reused_group_resource(g: &SecurityGroup) -> CloudResource {
    CloudResource::new(ResourceKind::SecurityGroup, &g.id, &g.name)
        .with_key(ResourceKey::security_group())
        .with_attr(attr::REUSED, "true")
}

/// A key pair as the engine sees it: Nova names key pairs, it gives them no id.
fn key_pair_resource(kp: &KeyPair) -> CloudResource {
    CloudResource::new(ResourceKind::KeyPair, &kp.name, &kp.name).with_attr("fingerprint", kp.fingerprint.clone())
}

fn port_resource(p: &Port) -> CloudResource {
    let mut r = CloudResource::new(
        ResourceKind::Port,
        &p.id,
        if p.name.is_empty() {
            p.id.clone()
        } else {
            p.name.clone()
        },
    );
    if !p.device_id.is_empty() {
        r = r.with_attr(attr::INSTANCE_ID, p.device_id.clone());
    }
    r
}

/// Compares OpenSSH public keys by type and key material (not the comment).
fn same_key(a: &str, b: &str) -> bool {
    let parts = |s: &str| s.split_whitespace().take(2).map(str::to_string).collect::<Vec<_>>();
    parts(a) == parts(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_plans() {
        assert_eq!(CreatePlan::for_missing(&[]), None);
        assert_eq!(CreatePlan::for_missing(&[3]), Some(CreatePlan::Single { index: 3 }));
        assert_eq!(
            CreatePlan::for_missing(&[1, 2, 3]),
            Some(CreatePlan::Contiguous { count: 3 })
        );
        assert_eq!(
            CreatePlan::for_missing(&[4, 5]),
            Some(CreatePlan::Renamed { indices: vec![4, 5] })
        );
        assert_eq!(
            CreatePlan::for_missing(&[1, 3]),
            Some(CreatePlan::Renamed { indices: vec![1, 3] })
        );
    }

    #[test]
    fn suffixes_of_multiple_create() {
        assert_eq!(suffix_index("lab-service", "lab-service-12"), Some(12));
        assert_eq!(suffix_index("lab-service", "lab-service-b1a2b3c4-1"), None);
        assert_eq!(suffix_index("lab-service-b1a2b3c4", "lab-service-b1a2b3c4-2"), Some(2));
        // a temporary name is never taken for a node
        assert_eq!(ResourceKey::server_from_name("lab", "lab-service-b1a2b3c4-2"), None);
    }

    #[test]
    fn keys_compare_without_comment() {
        assert!(same_key("ssh-ed25519 AAAAC3Nz you@host", "ssh-ed25519 AAAAC3Nz\n"));
        assert!(!same_key("ssh-ed25519 AAAAC3Nz", "ssh-ed25519 AAAAC3Nx"));
    }

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

    #[test]
    fn server_status_maps_to_resources() {
        let p = OpenStackProvider::with_password(
            "http://127.0.0.1:1/v3",
            "u",
            "p",
            "vre",
            "Default",
            OpenStackSettings::default(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = ClusterRef::new("lab");
        let s: ServerOne = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/nova-server-error.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let r = rt.block_on(p.server_resource(&c, &s.server)).unwrap();
        assert_eq!(r.key, Some(ResourceKey::server(Role::Service, 2)));
        assert_eq!(
            r.status,
            ResourceStatus::Failed {
                reason: "No valid host was found. There are not enough hosts available.".into()
            }
        );
        assert_eq!(r.attr(attr::FLAVOR), Some("m1.medium"));
        assert_eq!(r.attr(attr::ROLE), Some("service"));
        let mut active = s.server.clone();
        active.status = "ACTIVE".into();
        active.fault = None;
        active.addresses.insert(
            "lab-net".into(),
            vec![ServerAddress {
                addr: "10.0.0.14".into(),
                version: 4,
                kind: Some("fixed".into()),
            }],
        );
        let r = rt.block_on(p.server_resource(&c, &active)).unwrap();
        assert_eq!(r.status, ResourceStatus::Ready);
        assert_eq!(r.attr(attr::PRIVATE_IP), Some("10.0.0.14"));
    }

    /// Keystone and Nova stand-ins on 127.0.0.1: the first call of every
    /// method and path is refused (the flavor listing with 503, the rest with
    /// 429 and `Retry-After: 3`, as a rate-limiting front end answers), the
    /// next ones are served as Nova documents them.
    mod throttled {
        use std::collections::BTreeMap;
        use std::sync::{Arc, Mutex};

        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        use serde_json::{Value, json};

        #[derive(Default)]
        pub struct Nova {
            /// How many calls each `METHOD /path` got.
            pub calls: BTreeMap<String, u32>,
            /// Bodies of `POST /os-keypairs`.
            pub imports: Vec<Value>,
            keypair: Option<Value>,
        }

        pub struct Stub {
            pub auth_url: String,
            pub nova: Arc<Mutex<Nova>>,
        }

        fn answer(status: u16, headers: &[(&'static str, String)], body: Value) -> (StatusCode, HeaderMap, String) {
            let mut h = HeaderMap::new();
            h.insert("content-type", "application/json".parse().unwrap());
            for (k, v) in headers {
                h.insert(*k, v.parse().unwrap());
            }
            let body = if body.is_null() {
                String::new()
            } else {
                body.to_string()
            };
            (StatusCode::from_u16(status).unwrap(), h, body)
        }

        pub async fn start() -> Stub {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let nova: Arc<Mutex<Nova>> = Arc::default();
            let (state, root) = (nova.clone(), base.clone());
            let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: String| {
                let (state, root) = (state.clone(), root.clone());
                async move {
                    let path = uri.path().trim_end_matches('/').to_string();
                    let compute = format!("{root}/compute/v2.1");
                    if method == Method::POST && path == "/v3/auth/tokens" {
                        return answer(
                            201,
                            &[("x-subject-token", "gAAAAABWHAXl".into())],
                            json!({"token": {
                                "methods": ["password"], "expires_at": "2031-01-01T01:00:00.000000Z",
                                "issued_at": "2031-01-01T00:00:00.000000Z",
                                "project": {"id": "a6944d763bf64ee6a275f1263fae0352", "name": "vre", "domain": {"id": "default"}},
                                "catalog": [{"type": "compute", "name": "nova", "endpoints": [
                                    {"interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": compute}]}]
                            }}),
                        );
                    }
                    if method == Method::GET && path == "/compute/v2.1" {
                        return answer(
                            200,
                            &[],
                            json!({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
                                "links": [{"rel": "self", "href": format!("{compute}/")}]}}),
                        );
                    }
                    let mut nova = state.lock().unwrap();
                    let seen = nova.calls.entry(format!("{method} {path}")).or_insert(0);
                    *seen += 1;
                    let first = *seen == 1;
                    let keypair = "/compute/v2.1/os-keypairs/lab-key";
                    match (method.as_str(), path.as_str()) {
                        ("GET", "/compute/v2.1/flavors/detail") if first => answer(
                            503,
                            &[],
                            json!({"computeFault": {"code": 503, "message": "The server is currently unavailable. Please try again at a later time."}}),
                        ),
                        (_, _) if first => answer(
                            429,
                            &[("retry-after", "3".into())],
                            json!({"overLimit": {"code": 429, "message": "This request was rate-limited.", "retryAfter": "3"}}),
                        ),
                        ("GET", "/compute/v2.1/flavors/detail") => {
                            let flavor = |id: &str, name: &str, vcpus: u64, ram: u64, disk: u64| {
                                json!({"id": id, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk, "swap": 0,
                                       "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": true,
                                       "links": [{"rel": "self", "href": format!("{compute}/flavors/{id}")}]})
                            };
                            if uri.query().is_some_and(|q| q.contains("marker=2")) {
                                answer(200, &[], json!({"flavors": [flavor("3", "m1.medium", 2, 4096, 40)]}))
                            } else {
                                answer(
                                    200,
                                    &[],
                                    json!({"flavors": [flavor("1", "m1.tiny", 1, 512, 1), flavor("2", "m1.small", 1, 2048, 20)],
                                           "flavors_links": [{"rel": "next", "href": format!("{compute}/flavors/detail?limit=2&marker=2")}]}),
                                )
                            }
                        }
                        ("GET", p) if p == keypair => match &nova.keypair {
                            Some(k) => answer(200, &[], json!({ "keypair": k })),
                            None => answer(
                                404,
                                &[],
                                json!({"itemNotFound": {"code": 404, "message": "Keypair lab-key not found for user ee4dfb6e5540447cb3741905149d9b6e"}}),
                            ),
                        },
                        ("POST", "/compute/v2.1/os-keypairs") => {
                            let sent: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                            nova.imports.push(sent.clone());
                            let k = json!({"name": sent["keypair"]["name"], "public_key": sent["keypair"]["public_key"],
                                           "fingerprint": "7e:eb:ab:24:ba:d1:e1:88:ae:9a:fb:66:53:df:d3:bd", "type": "ssh",
                                           "user_id": "ee4dfb6e5540447cb3741905149d9b6e"});
                            nova.keypair = Some(k.clone());
                            answer(201, &[], json!({ "keypair": k }))
                        }
                        ("DELETE", p) if p == keypair => match nova.keypair.take() {
                            Some(_) => answer(204, &[], Value::Null),
                            None => answer(404, &[], json!({"itemNotFound": {"code": 404, "message": "Keypair lab-key not found"}})),
                        },
                        _ => answer(404, &[], json!({"itemNotFound": {"code": 404, "message": format!("no route {path}")}})),
                    }
                }
            });
            tokio::spawn(async move {
                axum::serve(listener, app).await.ok();
            });
            Stub {
                auth_url: format!("{base}/v3"),
                nova,
            }
        }
    }

    const PUBLIC_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcjCBr2yxgP2oEr4OyKgNfaJ9N7mb8TlcFIbJ0sqrp6 vre-test";

    /// Throttled key-pair calls fail with errors the engine retries (after
    /// the server's `Retry-After`), and the retry goes through.
    #[tokio::test]
    async fn rate_limited_key_pair_calls_are_retriable() {
        let stub = throttled::start().await;
        let p = OpenStackProvider::with_password(
            &stub.auth_url,
            "admin",
            "pw",
            "vre",
            "Default",
            OpenStackSettings::default(),
        );
        let c = ClusterRef::new("lab");
        let retried = |e: vre_core::Error| {
            assert_eq!(e.retry(), Some(Some(Duration::from_secs(3))), "{e}");
            assert!(e.to_string().contains("HTTP 429"), "{e}");
        };
        // the look-up is throttled, then the import
        retried(p.ensure_key_pair(&c, PUBLIC_KEY).await.unwrap_err());
        retried(p.ensure_key_pair(&c, PUBLIC_KEY).await.unwrap_err());
        let kp = p.ensure_key_pair(&c, PUBLIC_KEY).await.unwrap();
        assert_eq!((kp.kind.clone(), kp.name.as_str()), (ResourceKind::KeyPair, "lab-key"));
        assert_eq!(
            kp.attr("fingerprint"),
            Some("7e:eb:ab:24:ba:d1:e1:88:ae:9a:fb:66:53:df:d3:bd")
        );
        {
            let nova = stub.nova.lock().unwrap();
            assert_eq!(
                nova.imports,
                vec![json!({"keypair": {"name": "lab-key", "public_key": PUBLIC_KEY, "type": "ssh"}})],
                "imported once, with the key as given"
            );
        }
        // the same key again: found, nothing imported
        p.ensure_key_pair(&c, PUBLIC_KEY).await.unwrap();
        assert_eq!(stub.nova.lock().unwrap().imports.len(), 1);
        // delete: throttled once, then gone, and gone again is fine
        retried(p.delete(&c, &kp).await.unwrap_err());
        p.delete(&c, &kp).await.unwrap();
        p.delete(&c, &kp).await.unwrap();
        assert_eq!(
            stub.nova.lock().unwrap().calls["DELETE /compute/v2.1/os-keypairs/lab-key"],
            3
        );
    }

    /// A flavor listing answered 503 is retriable; the retry reads every page.
    #[tokio::test]
    async fn an_unavailable_flavor_listing_is_retriable() {
        let stub = throttled::start().await;
        let p = OpenStackProvider::with_password(
            &stub.auth_url,
            "admin",
            "pw",
            "vre",
            "Default",
            OpenStackSettings::default(),
        );
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

    #[test]
    fn debug_output_has_no_secret() {
        let p = OpenStackProvider::with_password(
            "http://127.0.0.1:1/v3",
            "admin",
            "hunter2",
            "vre",
            "Default",
            OpenStackSettings::default(),
        );
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}

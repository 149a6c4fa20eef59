//! The whole cloud: every resource of every service, the indexes that keep
//! lookups cheap at scale, the seeded random streams, and what a change
//! must tell the outside world (machine events, new timers).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::cinder::Volume;
use super::clock::Micros;
use super::glance::Image;
use super::keystone::Identity;
use super::neutron::ipam::SubnetAllocations;
use super::neutron::model::{FloatingIp, Network, Port, Router, SecurityGroup, SecurityGroupRule, Subnet};
use super::nova::model::{Flavor, KeyPair, Server, default_flavors};
use super::table::Table;
use super::{ResourceCounts, Timer};
use crate::Machine;

/// The version of the state file layout.
pub(crate) const STATE_FORMAT: u32 = 1;

/// The states of the seeded random streams, saved so a restarted simulator
/// neither repeats ids nor replays its choices.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RngState {
    /// Ids, MAC addresses, passwords.
    pub ids: u64,
    /// Boot times and which servers fail.
    pub builds: u64,
    /// Injected faults and latency jitter.
    pub faults: u64,
}

impl RngState {
    pub(crate) fn from_seed(seed: u64) -> RngState {
        // Three independent streams from one seed.
        let mut root = fastrand::Rng::with_seed(seed);
        RngState {
            ids: root.u64(..),
            builds: root.u64(..),
            faults: root.u64(..),
        }
    }
}

/// A change the machine side must hear about.
#[derive(Clone, Debug)]
pub(crate) enum MachineEvent {
    Booted(Machine),
    AddressesChanged(Machine),
    Deleted(Machine),
    /// Every booted machine, at a start on saved state.
    Resync(Vec<Machine>),
}

/// What a change produced besides itself, drained after the state lock is
/// released.
#[derive(Default)]
pub(crate) struct Outbox {
    pub events: Vec<MachineEvent>,
    pub timers: Vec<(Micros, Timer)>,
}

/// Lookups the tables alone would answer in O(n); rebuilt on load.
#[derive(Default)]
pub(crate) struct Indexes {
    /// Used addresses by subnet id.
    pub ips: HashMap<String, SubnetAllocations>,
    /// Ports by `device_id`.
    pub ports_by_device: HashMap<String, Vec<String>>,
    /// Floating IPs by associated port id.
    pub fips_by_port: HashMap<String, Vec<String>>,
}

fn push_unique(map: &mut HashMap<String, Vec<String>>, key: &str, value: &str) {
    let list = map.entry(key.to_string()).or_default();
    if !list.iter().any(|v| v == value) {
        list.push(value.to_string());
    }
}

fn remove_from(map: &mut HashMap<String, Vec<String>>, key: &str, value: &str) {
    if let Some(list) = map.get_mut(key) {
        list.retain(|v| v != value);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct CloudState {
    pub format: u32,
    pub rng: RngState,
    /// Audit ids of revoked tokens, with their expiry.
    #[serde(default)]
    pub revoked_tokens: BTreeMap<String, Micros>,
    #[serde(default)]
    pub instance_counter: u64,
    #[serde(default)]
    pub keypair_counter: u64,
    /// Neutron's standard attribute ids.
    #[serde(default)]
    pub standard_attr_counter: u64,
    #[serde(default)]
    pub keypairs: Table<KeyPair>,
    #[serde(default)]
    pub servers: Table<Server>,
    #[serde(default)]
    pub networks: Table<Network>,
    #[serde(default)]
    pub subnets: Table<Subnet>,
    #[serde(default)]
    pub ports: Table<Port>,
    #[serde(default)]
    pub routers: Table<Router>,
    #[serde(default)]
    pub security_groups: Table<SecurityGroup>,
    #[serde(default)]
    pub security_group_rules: Table<SecurityGroupRule>,
    #[serde(default)]
    pub floating_ips: Table<FloatingIp>,
    #[serde(default)]
    pub volumes: Table<Volume>,
    #[serde(default)]
    pub images: Table<Image>,
    #[serde(skip, default = "default_flavors")]
    pub flavors: Vec<Flavor>,
    #[serde(skip)]
    pub index: Indexes,
    #[serde(skip)]
    pub outbox: Outbox,
    #[serde(skip)]
    pub pace: super::app::Pace,
}

impl CloudState {
    /// An empty cloud; [`CloudState::seed`] adds what a fresh one has.
    pub(crate) fn new(seed: u64) -> CloudState {
        CloudState {
            format: STATE_FORMAT,
            rng: RngState::from_seed(seed),
            revoked_tokens: BTreeMap::new(),
            instance_counter: 0,
            keypair_counter: 0,
            standard_attr_counter: 0,
            keypairs: Table::default(),
            servers: Table::default(),
            networks: Table::default(),
            subnets: Table::default(),
            ports: Table::default(),
            routers: Table::default(),
            security_groups: Table::default(),
            security_group_rules: Table::default(),
            floating_ips: Table::default(),
            volumes: Table::default(),
            images: Table::default(),
            flavors: default_flavors(),
            index: Indexes::default(),
            outbox: Outbox::default(),
            pace: super::app::Pace::default(),
        }
    }

    /// Seeds a fresh cloud: the external network `public` with its subnet
    /// (the floating IP pool) and the two images, owned by project `admin`.
    pub(crate) fn seed(&mut self, identity: &Identity) {
        let admin_project = identity
            .project_by_name("admin")
            .map(|p| p.id.clone())
            .unwrap_or_default();
        super::neutron::seed_public_network(self, &admin_project);
        super::glance::seed_images(self, &admin_project);
    }

    /// Rebuilds the indexes after loading.
    pub(crate) fn rebuild_indexes(&mut self) {
        let mut index = Indexes::default();
        for port in self.ports.iter() {
            for f in &port.fixed_ips {
                index
                    .ips
                    .entry(f.subnet_id.clone())
                    .or_default()
                    .take(f.ip_address, &port.std.id);
            }
            if !port.device_id.is_empty() {
                push_unique(&mut index.ports_by_device, &port.device_id, &port.std.id);
            }
        }
        for fip in self.floating_ips.iter() {
            if let Some(port) = &fip.port_id {
                push_unique(&mut index.fips_by_port, port, &fip.std.id);
            }
        }
        self.index = index;
    }

    // ---- random streams ----

    pub(crate) fn ids_rng<R>(&mut self, f: impl FnOnce(&mut fastrand::Rng) -> R) -> R {
        let mut rng = fastrand::Rng::with_seed(self.rng.ids);
        let r = f(&mut rng);
        self.rng.ids = rng.get_seed();
        r
    }

    pub(crate) fn builds_rng<R>(&mut self, f: impl FnOnce(&mut fastrand::Rng) -> R) -> R {
        let mut rng = fastrand::Rng::with_seed(self.rng.builds);
        let r = f(&mut rng);
        self.rng.builds = rng.get_seed();
        r
    }

    pub(crate) fn faults_rng<R>(&mut self, f: impl FnOnce(&mut fastrand::Rng) -> R) -> R {
        let mut rng = fastrand::Rng::with_seed(self.rng.faults);
        let r = f(&mut rng);
        self.rng.faults = rng.get_seed();
        r
    }

    /// A random (version 4) UUID from the seeded stream.
    pub(crate) fn uuid(&mut self) -> String {
        let (a, b) = self.ids_rng(|r| (r.u64(..), r.u64(..)));
        let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
        let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    pub(crate) fn next_standard_attr_id(&mut self) -> u64 {
        self.standard_attr_counter += 1;
        self.standard_attr_counter
    }

    /// A token audit id (22 characters of URL-safe base64, as Keystone's).
    pub(crate) fn random_audit_id(&mut self) -> String {
        self.random_text(22, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    }

    pub(crate) fn random_text(&mut self, len: usize, alphabet: &str) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        self.ids_rng(|r| (0..len).map(|_| chars[r.usize(..chars.len())]).collect())
    }

    /// A MAC address in OpenStack's `fa:16:3e` prefix.
    pub(crate) fn mac_address(&mut self) -> String {
        let b = self.ids_rng(|r| [r.u8(..), r.u8(..), r.u8(..)]);
        format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
    }

    // ---- indexes kept in step with ports and floating IPs ----

    pub(crate) fn insert_port(&mut self, port: Port) {
        for f in &port.fixed_ips {
            self.index
                .ips
                .entry(f.subnet_id.clone())
                .or_default()
                .take(f.ip_address, &port.std.id);
        }
        if !port.device_id.is_empty() {
            push_unique(&mut self.index.ports_by_device, &port.device_id, &port.std.id);
        }
        self.ports.insert(port);
    }

    pub(crate) fn remove_port(&mut self, id: &str) -> Option<Port> {
        let port = self.ports.remove(id)?;
        for f in &port.fixed_ips {
            if let Some(a) = self.index.ips.get_mut(&f.subnet_id) {
                a.release(f.ip_address);
            }
        }
        if !port.device_id.is_empty() {
            remove_from(&mut self.index.ports_by_device, &port.device_id, id);
        }
        Some(port)
    }

    /// Sets a port's device (empty to unbind).
    pub(crate) fn set_port_device(&mut self, id: &str, device_id: &str, device_owner: &str, host: &str, now: Micros) {
        let Some(port) = self.ports.get_mut(id) else { return };
        let old = std::mem::replace(&mut port.device_id, device_id.to_string());
        port.device_owner = device_owner.to_string();
        port.binding_host = host.to_string();
        port.std.touch(now);
        if !old.is_empty() {
            remove_from(&mut self.index.ports_by_device, &old, id);
        }
        if !device_id.is_empty() {
            push_unique(&mut self.index.ports_by_device, device_id, id);
        }
    }

    pub(crate) fn ports_of_device(&self, device_id: &str) -> &[String] {
        self.index
            .ports_by_device
            .get(device_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Points a floating IP at a port (or at none).
    pub(crate) fn set_fip_port(&mut self, fip_id: &str, port: Option<(String, Ipv4Addr, String)>, now: Micros) {
        let Some(fip) = self.floating_ips.get_mut(fip_id) else {
            return;
        };
        let old = fip.port_id.take();
        match port {
            Some((port_id, fixed, router)) => {
                fip.port_id = Some(port_id);
                fip.fixed_ip_address = Some(fixed);
                fip.router_id = Some(router);
            }
            None => {
                fip.fixed_ip_address = None;
                fip.router_id = None;
            }
        }
        fip.std.touch(now);
        let new = fip.port_id.clone();
        if let Some(old) = old {
            remove_from(&mut self.index.fips_by_port, &old, fip_id);
        }
        if let Some(new) = new {
            push_unique(&mut self.index.fips_by_port, &new, fip_id);
        }
    }

    pub(crate) fn fips_of_port(&self, port_id: &str) -> &[String] {
        self.index.fips_by_port.get(port_id).map(Vec::as_slice).unwrap_or(&[])
    }

    // ---- machines ----

    /// Every server that booted and is not being deleted, as machines.
    pub(crate) fn booted_machines(&self) -> Vec<Machine> {
        self.servers
            .iter()
            .filter(|s| s.booted && s.gone_at.is_none())
            .map(|s| self.machine(s))
            .collect()
    }

    /// The machine a server is, as the cluster side sees it.
    pub(crate) fn machine(&self, server: &Server) -> Machine {
        let mut private_ip = None;
        let mut public_ips = Vec::new();
        for port_id in &server.port_ids {
            let Some(port) = self.ports.get(port_id) else { continue };
            if private_ip.is_none() {
                private_ip = port.fixed_ips.first().map(|f| f.ip_address);
            }
            for fip in self.fips_of_port(port_id) {
                if let Some(fip) = self.floating_ips.get(fip) {
                    public_ips.push(IpAddr::V4(fip.floating_ip_address));
                }
            }
        }
        let user_data = server.user_data.as_deref().and_then(|b64| {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        });
        Machine {
            id: server.id.clone(),
            name: server.name.clone(),
            project_id: server.project_id.clone(),
            private_ip,
            public_ips,
            user_data,
            metadata: server.metadata.clone(),
        }
    }

    /// Tells the machine side that the addresses of the server behind a
    /// port changed (floating IP associated or released).
    pub(crate) fn notify_addresses(&mut self, port_id: &str) {
        let Some(device) = self.ports.get(port_id).map(|p| p.device_id.clone()) else {
            return;
        };
        let Some(server) = self.servers.get(&device) else {
            return;
        };
        if server.booted && server.gone_at.is_none() {
            let machine = self.machine(server);
            self.outbox.events.push(MachineEvent::AddressesChanged(machine));
        }
    }

    pub(crate) fn schedule(&mut self, at: Micros, timer: Timer) {
        self.outbox.timers.push((at, timer));
    }

    /// Every pending timer, to resume them after a restart.
    pub(crate) fn pending_timers(&self) -> Vec<(Micros, Timer)> {
        let mut timers = Vec::new();
        for s in self.servers.iter() {
            if let Some(at) = s.build_done {
                timers.push((at, Timer::ServerBuilt(s.id.clone())));
            }
            if let Some(at) = s.gone_at {
                timers.push((at, Timer::ServerGone(s.id.clone())));
            }
            if let Some(at) = s.task_done {
                timers.push((at, Timer::ServerTask(s.id.clone())));
            }
        }
        for v in self.volumes.iter() {
            if let Some(t) = &v.transition {
                timers.push((t.at, Timer::Volume(v.id.clone())));
            }
        }
        for i in self.images.iter() {
            if let Some(at) = i.import_done {
                timers.push((at, Timer::ImageImported(i.id.clone())));
            }
        }
        timers
    }

    /// Resources by project name (see [`ResourceCounts`]).
    pub(crate) fn counts(&self, identity: &Identity) -> BTreeMap<String, ResourceCounts> {
        let mut by_id: BTreeMap<&str, ResourceCounts> = BTreeMap::new();
        for s in self.servers.iter() {
            by_id.entry(&s.project_id).or_default().servers += 1;
        }
        for v in self.volumes.iter() {
            by_id.entry(&v.project_id).or_default().volumes += 1;
        }
        for p in self.ports.iter() {
            by_id.entry(&p.std.project_id).or_default().ports += 1;
        }
        for f in self.floating_ips.iter() {
            by_id.entry(&f.std.project_id).or_default().floating_ips += 1;
        }
        for n in self.networks.iter() {
            by_id.entry(&n.std.project_id).or_default().networks += 1;
        }
        for s in self.subnets.iter() {
            by_id.entry(&s.std.project_id).or_default().subnets += 1;
        }
        for r in self.routers.iter() {
            by_id.entry(&r.std.project_id).or_default().routers += 1;
        }
        for g in self.security_groups.iter().filter(|g| !g.is_default) {
            by_id.entry(&g.std.project_id).or_default().security_groups += 1;
        }
        for k in self.keypairs.iter() {
            by_id.entry(&k.project_id).or_default().key_pairs += 1;
        }
        for i in self.images.iter() {
            by_id.entry(&i.owner).or_default().images += 1;
        }
        by_id
            .into_iter()
            .filter(|(id, _)| !id.is_empty())
            .map(|(id, counts)| {
                let name = identity
                    .project(id)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| id.to_string());
                (name, counts)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_well_formed_and_reproducible() {
        let mut a = CloudState::new(7);
        let mut b = CloudState::new(7);
        let u = a.uuid();
        assert_eq!(u, b.uuid());
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4", "version 4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "RFC 4122 variant");
        assert_ne!(a.uuid(), u, "the stream advances");
        assert_ne!(CloudState::new(8).uuid(), u);
    }

    #[test]
    fn macs_use_the_openstack_prefix() {
        let mac = CloudState::new(1).mac_address();
        assert!(mac.starts_with("fa:16:3e:"), "{mac}");
        assert_eq!(mac.len(), 17);
    }
}

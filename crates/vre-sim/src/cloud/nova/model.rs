//! Nova's resources: flavors, key pairs and servers with their block
//! device mappings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cloud::clock::Micros;
use crate::cloud::table::Keyed;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub ephemeral_gb: u64,
    pub swap_mb: u64,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
}

/// Nova's classic default flavors.
pub(crate) fn default_flavors() -> Vec<Flavor> {
    [
        ("1", "m1.tiny", 1, 512, 1),
        ("2", "m1.small", 1, 2048, 20),
        ("3", "m1.medium", 2, 4096, 40),
        ("4", "m1.large", 4, 8192, 80),
        ("5", "m1.xlarge", 8, 16384, 160),
    ]
    .into_iter()
    .map(|(id, name, vcpus, ram_mb, disk_gb)| Flavor {
        id: id.into(),
        name: name.into(),
        vcpus,
        ram_mb,
        disk_gb,
        ephemeral_gb: 0,
        swap_mb: 0,
        description: None,
        extra_specs: BTreeMap::new(),
    })
    .collect()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyPair {
    /// `user_id/name`: key pairs belong to users.
    pub key: String,
    pub name: String,
    pub user_id: String,
    /// The project the creating token was scoped to (for resource counts).
    pub project_id: String,
    pub public_key: String,
    pub fingerprint: String,
    pub key_type: String,
    pub created: Micros,
    pub number: u64,
}

impl Keyed for KeyPair {
    fn key(&self) -> &str {
        &self.key
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum VmState {
    Building,
    Active,
    Stopped,
    Error,
}

impl VmState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            VmState::Building => "building",
            VmState::Active => "active",
            VmState::Stopped => "stopped",
            VmState::Error => "error",
        }
    }
}

/// What a server in BUILD becomes when its build ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Fate {
    Active,
    /// The scheduler finds no host (`server_error_rate`).
    NoValidHost,
    /// The network ran out of addresses while the server was built.
    NetworkFailed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Fault {
    pub code: u16,
    pub message: String,
    pub details: String,
    pub created: Micros,
}

/// A volume attached to a server (Nova's block device mapping).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Attachment {
    pub volume_id: String,
    pub device: String,
    pub delete_on_termination: bool,
    pub tag: Option<String>,
    pub attachment_id: String,
    pub bdm_uuid: String,
    /// 0 for the root disk of a boot-from-volume server.
    pub boot_index: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Server {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub description: Option<String>,
    pub project_id: String,
    pub user_id: String,
    pub created: Micros,
    pub updated: Micros,
    pub vm_state: VmState,
    pub task_state: Option<String>,
    pub power_state: u8,
    pub fate: Fate,
    /// When the build started and when it ends (BUILD only).
    pub build_started: Micros,
    pub build_done: Option<Micros>,
    /// When a deleted server disappears.
    pub gone_at: Option<Micros>,
    /// When the task of an action (stop, start, reboot) ends.
    #[serde(default)]
    pub task_done: Option<Micros>,
    pub launched_at: Option<Micros>,
    pub image_id: Option<String>,
    pub flavor: super::model::Flavor,
    pub key_name: Option<String>,
    /// As given (base64).
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub reservation_id: String,
    pub launch_index: u32,
    pub instance_number: u64,
    pub availability_zone: Option<String>,
    pub config_drive: bool,
    pub auto_disk_config: bool,
    pub access_ipv4: String,
    pub access_ipv6: String,
    /// NICs in order.
    pub port_ids: Vec<String>,
    /// NICs Nova created (deleted with the server).
    pub created_ports: Vec<String>,
    pub attachments: Vec<Attachment>,
    pub fault: Option<Fault>,
    pub locked: bool,
    /// `MachineEvents::booted` was called.
    pub booted: bool,
}

impl Keyed for Server {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Server {
    /// Nova's `status` from `vm_state` and `task_state`.
    pub(crate) fn status(&self) -> &'static str {
        match (self.vm_state, self.task_state.as_deref()) {
            (VmState::Building, _) => "BUILD",
            (VmState::Active, Some("rebooting")) => "REBOOT",
            (VmState::Active, _) => "ACTIVE",
            (VmState::Stopped, _) => "SHUTOFF",
            (VmState::Error, _) => "ERROR",
        }
    }

    /// `instance-%08x`.
    pub(crate) fn instance_name(&self) -> String {
        format!("instance-{:08x}", self.instance_number)
    }

    /// The task of a building server, from how far the build has come
    /// (scheduling, then networking and block devices, then spawning).
    pub(crate) fn build_task(&self, now: Micros) -> Option<&'static str> {
        let done = self.build_done?;
        if self.vm_state != VmState::Building {
            return None;
        }
        let total = (done.0 - self.build_started.0).max(1);
        let elapsed = (now.0 - self.build_started.0).max(0);
        let fraction = elapsed as f64 / total as f64;
        Some(if self.fate == Fate::NoValidHost || fraction < 0.1 {
            "scheduling"
        } else if fraction < 0.2 {
            if self.attachments.is_empty() {
                "networking"
            } else {
                "block_device_mapping"
            }
        } else {
            "spawning"
        })
    }

    /// A host was chosen (not for a server that found none, nor before scheduling).
    pub(crate) fn host(&self, now: Micros) -> Option<&'static str> {
        let scheduled = match self.vm_state {
            VmState::Building => self.build_task(now) != Some("scheduling"),
            VmState::Error => self.fate != Fate::NoValidHost,
            _ => true,
        };
        scheduled.then_some(super::HOST)
    }
}

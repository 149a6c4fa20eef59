//! The `[sim]` table of vre.toml and its `VRE_SIM_<KEY>` variables.

use std::collections::BTreeMap;
use std::time::Duration;

use vre_core::spec::{Diagnostics, Table, TableReader};
use vre_core::{Error, Result};
use vre_sim::SimConfig;

use crate::TABLE;

/// Every `[sim]` key, in documentation order.
const KEYS: &[&str] = &[
    "time_scale",
    "boot_seconds",
    "boot_jitter_seconds",
    "join_seconds",
    "ready_seconds",
    "latency_ms",
    "jitter_ms",
    "rate_limit_per_second",
    "rate_limit_burst",
    "error_rate",
    "timeout_rate",
    "server_error_rate",
    "never_join_rate",
    "seed",
    "cloud_port",
];

/// The `[sim]` table, read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimSettings {
    /// The simulation's knobs: clock scale, boot and join times, latency,
    /// rate limits and fault rates.
    pub config: SimConfig,
    /// The port the simulated cloud listens on (0: any free port).
    pub cloud_port: u16,
}

/// Reads `[sim]` into `diags` (every problem, located).
pub fn read_settings(table: &Table, diags: &mut Diagnostics) -> SimSettings {
    let mut r = TableReader::new(table, TABLE);
    let mut c = SimConfig::default();
    let secs = |v: f64| Duration::from_secs_f64(v);
    let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
    if let Some(v) = r.float(diags, "time_scale", 0.0, 100.0, 0.02) {
        c.time_scale = v.value;
    }
    if let Some(v) = r.float(diags, "boot_seconds", 0.0, 86_400.0, 30.0) {
        c.boot_time = secs(v.value);
    }
    if let Some(v) = r.float(diags, "boot_jitter_seconds", 0.0, 86_400.0, 10.0) {
        c.boot_jitter = secs(v.value);
    }
    if let Some(v) = r.float(diags, "join_seconds", 0.0, 86_400.0, 20.0) {
        c.join_time = secs(v.value);
    }
    if let Some(v) = r.float(diags, "ready_seconds", 0.0, 86_400.0, 10.0) {
        c.ready_time = secs(v.value);
    }
    if let Some(v) = r.float(diags, "latency_ms", 0.0, 600_000.0, 50.0) {
        c.latency = ms(v.value);
    }
    if let Some(v) = r.float(diags, "jitter_ms", 0.0, 600_000.0, 10.0) {
        c.jitter = ms(v.value);
    }
    let per_second = r.float(diags, "rate_limit_per_second", 0.001, 1_000_000.0, 10.0);
    let burst = r.integer(diags, "rate_limit_burst", 1, 1_000_000, 20);
    if let Some(p) = per_second {
        c.rate_limit = Some(vre_sim::RateLimit {
            per_second: p.value,
            burst: burst.map_or(p.value.ceil() as u32, |b| b.value as u32),
        });
    } else if let Some(b) = burst {
        diags.error(
            "sim.rate_limit_burst",
            b.span,
            "needs rate_limit_per_second; add `rate_limit_per_second = 10` or remove it",
        );
    }
    for (key, slot) in [
        ("error_rate", &mut c.error_rate),
        ("timeout_rate", &mut c.timeout_rate),
        ("server_error_rate", &mut c.server_error_rate),
        ("never_join_rate", &mut c.never_join_rate),
    ] {
        if let Some(v) = r.float(diags, key, 0.0, 1.0, 0.05) {
            *slot = v.value;
        }
    }
    if let Some(v) = r.integer(diags, "seed", 0, i64::MAX, 1) {
        c.seed = v.value as u64;
    }
    let cloud_port = r
        .integer(diags, "cloud_port", 0, 65535, 0)
        .map_or(0, |v| v.value as u16);
    r.finish(diags, KEYS);
    SimSettings { config: c, cloud_port }
}

/// `[sim]` with `VRE_SIM_<KEY>` variables laid over it.
pub(crate) fn with_env(table: &Table, env: &BTreeMap<String, String>) -> Result<Table> {
    let mut t = table.clone();
    for key in KEYS {
        let var = format!("VRE_SIM_{}", key.to_ascii_uppercase());
        if let Some(v) = env.get(&var).filter(|v| !v.is_empty()) {
            let value = if let Ok(i) = v.parse::<i64>() {
                vre_core::spec::Value::Integer(i)
            } else if let Ok(f) = v.parse::<f64>() {
                vre_core::spec::Value::Float(f)
            } else {
                return Err(Error::input(var, format!("\"{v}\" is not a number")));
            };
            t.insert(key, value);
        }
    }
    Ok(t)
}

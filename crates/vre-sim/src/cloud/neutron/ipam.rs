//! IPv4 subnets and address allocation, as Neutron's internal IPAM does
//! it: fixed IPs come from the subnet's allocation pools, lowest free first.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub network: u32,
    pub prefix: u8,
}

impl Cidr {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub(crate) fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network
    }

    pub(crate) fn overlaps(self, other: Cidr) -> bool {
        let mask = self.mask() & other.mask();
        self.network & mask == other.network & mask
    }

    /// The first and last usable addresses (no network/broadcast address
    /// for prefixes up to /30, as Neutron computes default pools).
    pub(crate) fn hosts(self) -> (u32, u32) {
        let last = self.network | !self.mask();
        if self.prefix >= 31 {
            (self.network, last)
        } else {
            (self.network + 1, last - 1)
        }
    }

    pub(crate) fn broadcast(self) -> u32 {
        self.network | !self.mask()
    }

    /// Parses `a.b.c.d/n`; `Err` carries the normalized form when host bits
    /// are set (Neutron rejects those and recommends the network address).
    pub(crate) fn parse(s: &str) -> Result<Cidr, Option<String>> {
        let (addr, prefix) = s.split_once('/').ok_or(None)?;
        let addr = Ipv4Addr::from_str(addr).map_err(|_| None)?;
        let prefix: u8 = prefix.parse().map_err(|_| None)?;
        if prefix > 32 {
            return Err(None);
        }
        let mut cidr = Cidr {
            network: u32::from(addr),
            prefix,
        };
        let normalized = u32::from(addr) & cidr.mask();
        if normalized != u32::from(addr) {
            cidr.network = normalized;
            return Err(Some(cidr.to_string()));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Cidr::parse(&s).map_err(|_| serde::de::Error::custom(format!("invalid CIDR {s}")))
    }
}

/// An allocation pool (inclusive range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pool {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl Pool {
    pub(crate) fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(self.start)..=u32::from(self.end)).contains(&u32::from(ip))
    }
}

/// The default pools: every host address but the gateway.
pub(crate) fn default_pools(cidr: Cidr, gateway: Option<Ipv4Addr>) -> Vec<Pool> {
    let (first, last) = cidr.hosts();
    if first > last {
        return Vec::new();
    }
    let pool = |a: u32, b: u32| Pool {
        start: Ipv4Addr::from(a),
        end: Ipv4Addr::from(b),
    };
    match gateway.map(u32::from) {
        Some(g) if (first..=last).contains(&g) => {
            let mut pools = Vec::new();
            if g > first {
                pools.push(pool(first, g - 1));
            }
            if g < last {
                pools.push(pool(g + 1, last));
            }
            pools
        }
        _ => vec![pool(first, last)],
    }
}

/// The addresses in use in one subnet, by owner (a port id).
#[derive(Clone, Debug, Default)]
pub(crate) struct SubnetAllocations {
    used: BTreeMap<u32, String>,
}

impl SubnetAllocations {
    pub(crate) fn owner(&self, ip: Ipv4Addr) -> Option<&str> {
        self.used.get(&u32::from(ip)).map(String::as_str)
    }

    pub(crate) fn take(&mut self, ip: Ipv4Addr, owner: &str) {
        self.used.insert(u32::from(ip), owner.to_string());
    }

    pub(crate) fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// The lowest free address of the pools (never the gateway).
    pub(crate) fn next_free(&self, pools: &[Pool], gateway: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let gateway = gateway.map(u32::from);
        for pool in pools {
            let (start, end) = (u32::from(pool.start), u32::from(pool.end));
            let mut candidate = start;
            // Walk the used addresses inside the pool in order: the first gap wins.
            for (&ip, _) in self.used.range(start..=end) {
                if Some(candidate) == gateway {
                    candidate += 1;
                }
                if candidate < ip {
                    break;
                }
                candidate = ip.saturating_add(1);
            }
            if Some(candidate) == gateway {
                candidate = candidate.saturating_add(1);
                while self.used.contains_key(&candidate) {
                    candidate = candidate.saturating_add(1);
                }
            }
            if candidate >= start && candidate <= end && !self.used.contains_key(&candidate) {
                return Some(Ipv4Addr::from(candidate));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/24");
        assert!(c.contains("10.0.0.77".parse().unwrap()));
        assert!(!c.contains("10.0.1.1".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.1/24"), Err(Some("10.0.0.0/24".to_string())));
        assert_eq!(Cidr::parse("10.0.0.0/33"), Err(None));
        assert_eq!(Cidr::parse("nonsense"), Err(None));
        assert!(c.overlaps(Cidr::parse("10.0.0.128/25").unwrap()));
        assert!(!c.overlaps(Cidr::parse("10.0.1.0/24").unwrap()));
    }

    #[test]
    fn default_pools_skip_the_gateway() {
        let c = Cidr::parse("192.168.199.0/24").unwrap();
        let pools = default_pools(c, Some("192.168.199.1".parse().unwrap()));
        assert_eq!(
            pools,
            vec![Pool {
                start: "192.168.199.2".parse().unwrap(),
                end: "192.168.199.254".parse().unwrap()
            }]
        );
        let pools = default_pools(c, Some("192.168.199.100".parse().unwrap()));
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].end, "192.168.199.99".parse::<Ipv4Addr>().unwrap());
    }

    #[test]
    fn allocates_the_lowest_free_address() {
        let pools = vec![Pool {
            start: "10.0.0.2".parse().unwrap(),
            end: "10.0.0.5".parse().unwrap(),
        }];
        let gw = Some("10.0.0.1".parse().unwrap());
        let mut a = SubnetAllocations::default();
        let mut got = Vec::new();
        while let Some(ip) = a.next_free(&pools, gw) {
            a.take(ip, "p");
            got.push(ip.to_string());
        }
        assert_eq!(got, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
        a.release("10.0.0.3".parse().unwrap());
        assert_eq!(a.next_free(&pools, gw), Some("10.0.0.3".parse().unwrap()));
    }

    #[test]
    fn never_hands_out_the_gateway_inside_a_pool() {
        let pools = vec![Pool {
            start: "10.0.0.1".parse().unwrap(),
            end: "10.0.0.3".parse().unwrap(),
        }];
        let mut a = SubnetAllocations::default();
        let gw = Some("10.0.0.1".parse().unwrap());
        assert_eq!(a.next_free(&pools, gw), Some("10.0.0.2".parse().unwrap()));
        a.take("10.0.0.2".parse().unwrap(), "p");
        assert_eq!(a.next_free(&pools, gw), Some("10.0.0.3".parse().unwrap()));
    }
}

//! The Kubernetes version a cluster runs, and what depends on it (the
//! kubeadm config API, the package repository, the control-plane taint).

use std::fmt;

use crate::error::KubeError;

/// The oldest minor release vre bootstraps: the first one published on
/// pkgs.k8s.io, and one whose kubeadm reads `kubeadm.k8s.io/v1beta3`.
pub const MIN_MINOR: u32 = 24;

/// A released Kubernetes version, `MAJOR.MINOR.PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubernetesVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KubernetesVersion {
    /// Parses `1.30.2` (a leading `v` is accepted); the error names the
    /// spec field `kubernetes.version`.
    pub fn parse(s: &str) -> Result<Self, KubeError> {
        let bad = |why: &str| KubeError::Spec {
            field: "kubernetes.version",
            message: format!("\"{s}\" {why}; write a released version such as \"1.30.2\""),
        };
        let t = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 3 {
            return Err(bad("is not MAJOR.MINOR.PATCH"));
        }
        let num = |p: &str| -> Result<u32, KubeError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("has a part that is not a number"));
            }
            p.parse().map_err(|_| bad("has a part that is too large"))
        };
        let v = KubernetesVersion {
            major: num(parts[0])?,
            minor: num(parts[1])?,
            patch: num(parts[2])?,
        };
        if v.major != 1 || v.minor < MIN_MINOR {
            return Err(KubeError::Spec {
                field: "kubernetes.version",
                message: format!(
                    "{v} is not supported; vre bootstraps Kubernetes 1.{MIN_MINOR} or newer (packages come from pkgs.k8s.io)"
                ),
            });
        }
        Ok(v)
    }

    /// `kubeadm.k8s.io/v1beta4` from 1.31 on, `v1beta3` before.
    pub fn kubeadm_api_version(&self) -> &'static str {
        if self.minor >= 31 {
            "kubeadm.k8s.io/v1beta4"
        } else {
            "kubeadm.k8s.io/v1beta3"
        }
    }

    /// Whether kubeadm's config takes extra arguments as `[{name, value}]`
    /// (v1beta4) rather than a string map (v1beta3).
    pub fn structured_extra_args(&self) -> bool {
        self.minor >= 31
    }

    /// `v1.30`: the pkgs.k8s.io repository of this minor release.
    pub fn repo_minor(&self) -> String {
        format!("v{}.{}", self.major, self.minor)
    }

    /// `1.30.2`, as apt package versions start.
    pub fn package_prefix(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let v = KubernetesVersion::parse("1.30.2").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 30, 2));
        assert_eq!(v.to_string(), "v1.30.2");
        assert_eq!(KubernetesVersion::parse("v1.31.0").unwrap().minor, 31);
        for bad in ["1.30", "1.30.x", "", "1..2", "2.0.0", "1.20.2", "1.30.2.1", "1.+30.2"] {
            let e = KubernetesVersion::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("kubernetes.version: "), "{bad}: {e}");
        }
    }

    #[test]
    fn kubeadm_api_follows_minor() {
        assert_eq!(
            KubernetesVersion::parse("1.30.9").unwrap().kubeadm_api_version(),
            "kubeadm.k8s.io/v1beta3"
        );
        assert_eq!(
            KubernetesVersion::parse("1.31.0").unwrap().kubeadm_api_version(),
            "kubeadm.k8s.io/v1beta4"
        );
        assert_eq!(KubernetesVersion::parse("1.33.1").unwrap().repo_minor(), "v1.33");
    }
}

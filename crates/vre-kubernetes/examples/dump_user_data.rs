//! Writes the user data of every role, for a sample cluster, into a
//! directory, so CI can run `cloud-init schema` and `shellcheck` over it:
//!
//! ```sh
//! cargo run -p vre-kubernetes --example dump_user_data -- OUTDIR
//! ci/k8s/check-user-data.sh OUTDIR
//! ```
//!
//! It writes `<role>-<variant>.yaml` for a vanilla Ubuntu image and a
//! pre-provisioned one, for a Kubernetes version configured through
//! kubeadm v1beta3 (1.30) and one through v1beta4 (1.33), and for a
//! single-node cluster; the cluster CA and token live in `OUTDIR/.vre`.

use std::path::PathBuf;
use std::process::ExitCode;

use vre_core::{BootstrapFacts, Orchestrator, Role};
use vre_kubernetes::{KubernetesOptions, KubernetesOrchestrator};

fn facts(version: &str, preinstalled: bool, single_node: bool) -> BootstrapFacts {
    BootstrapFacts {
        cluster: "sample".into(),
        master_private_ip: "10.0.0.10".parse().expect("constant"),
        master_public_ip: Some("203.0.113.10".parse().expect("constant")),
        api_port: 6443,
        kubernetes_version: version.into(),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/12".into(),
        image_preinstalled: preinstalled,
        ssh_user: "ubuntu".into(),
        master_as_edge: single_node,
        single_node,
    }
}

async fn run(out: PathBuf) -> Result<(), String> {
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let orchestrator = KubernetesOrchestrator::new(&out, KubernetesOptions::default());
    let variants = [
        ("v1beta3-vanilla", facts("1.30.2", false, false), &Role::ALL[..]),
        ("v1beta4-vanilla", facts("1.33.1", false, false), &Role::ALL[..]),
        ("v1beta3-preinstalled", facts("1.30.2", true, false), &Role::ALL[..]),
        ("single-node", facts("1.33.1", false, true), &[Role::Master][..]),
    ];
    for (name, facts, roles) in variants {
        orchestrator.prepare(&facts).await.map_err(|e| e.to_string())?;
        for role in roles {
            let text = orchestrator.user_data(*role, &facts).map_err(|e| e.to_string())?;
            let path = out.join(format!("{role}-{name}.yaml"));
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: dump_user_data OUTDIR");
        return ExitCode::from(2);
    };
    match run(out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dump_user_data: {e}");
            ExitCode::FAILURE
        }
    }
}

//! A small VRE defined in code with the vre library (not the CLI): one
//! master, two service nodes, one storage node, the master as the edge.
//! It is applied, its nodes and endpoints are printed, and it is destroyed.
//!
//! With `OS_CLOUD` or `OS_AUTH_URL` set it uses that OpenStack cloud (set
//! `VRE_EXAMPLE_IMAGE` / `VRE_EXAMPLE_FLAVOR` / `VRE_EXAMPLE_EXTERNAL_NETWORK`
//! to match it); without, it starts the embedded simulator, whose cloud
//! speaks the same OpenStack API to the same provider code.
//!
//! ```sh
//! cargo run --example openstack_cluster
//! ```

use std::error::Error;

use vre::openstack::OpenStackSettings;
use vre::spec::Table;
use vre::{ClusterSpec, Components, Event, EventSink, Role};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let real_cloud = var("OS_CLOUD").is_some() || var("OS_AUTH_URL").is_some();
    if real_cloud {
        println!("Using the OpenStack cloud that OS_CLOUD / OS_AUTH_URL name.");
    } else {
        println!("No OS_CLOUD or OS_AUTH_URL set: starting the embedded simulator (vre-sim) on 127.0.0.1.");
    }

    // The VRE, in code.
    let mut spec = ClusterSpec::new("example", if real_cloud { "openstack" } else { "local" });
    spec.image.name = var("VRE_EXAMPLE_IMAGE").unwrap_or_else(|| "kubenow-ubuntu-24.04".into());
    spec.image.preinstalled = true;
    let flavor = var("VRE_EXAMPLE_FLAVOR").unwrap_or_else(|| "m1.medium".into());
    spec.group_mut(Role::Master).flavor = flavor.clone();
    spec.group_mut(Role::Service).count = 2;
    spec.group_mut(Role::Service).flavor = flavor.clone();
    let storage = spec.group_mut(Role::Storage);
    storage.count = 1;
    storage.flavor = flavor;
    storage.volume_gb = Some(20);
    spec.master_as_edge = true;
    spec.storage.enabled = true;
    spec.storage.object_storage = true;
    spec.provider_table = if real_cloud {
        Table::from_serialize(&OpenStackSettings {
            external_network: var("VRE_EXAMPLE_EXTERNAL_NETWORK").unwrap_or_else(|| "public".into()),
            ..OpenStackSettings::default()
        })?
    } else {
        // a fast simulated cloud: a 30 s boot takes 0.3 s
        Table::from_serialize(&serde_json::json!({ "time_scale": 0.01 }))?
    };

    // Where its state, keys and kubeconfig live.
    let dir = std::env::temp_dir().join(format!("vre-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    vre::keys::write_ssh_key_pair(&dir, "vre-example")?;

    // Progress, as the library reports it.
    let (events, mut rx) = EventSink::channel();
    let printer = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            match e {
                Event::StepFinished { step, elapsed_ms } => println!("  done {step} ({elapsed_ms} ms)"),
                Event::NodesReady { ready, expected } if ready == expected => println!("  {ready} nodes Ready"),
                Event::Warning { message } => println!("  warning: {message}"),
                _ => {}
            }
        }
    });

    let deployment = Components::standard().deployment(spec, &dir, events).await?;
    println!("{}", deployment.plan().await?);
    let report = deployment.apply().await?;
    println!("Applied in {:.1}s.", report.elapsed.as_secs_f64());

    let status = deployment.status().await?;
    match &status.nodes {
        Ok(nodes) => {
            for n in nodes {
                println!(
                    "node {:<22} {:<8} {:<6} {}",
                    n.name,
                    n.role.map(|r| r.to_string()).unwrap_or_default(),
                    if n.ready { "Ready" } else { "NotReady" },
                    n.internal_ip.as_deref().unwrap_or("")
                );
            }
        }
        Err(e) => println!("nodes: {e}"),
    }
    for (name, value) in &report.outputs {
        println!("{name:<24} {value}");
    }

    let destroyed = deployment.destroy().await?;
    println!("Destroyed {} resources.", destroyed.deleted.len());
    drop(deployment);
    vre::local::shutdown_all().await;
    let _ = printer.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

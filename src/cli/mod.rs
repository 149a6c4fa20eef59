//! The `vre` command line: `init`, `plan`, `apply`, `destroy`, `scale`,
//! `status`, `kubeconfig`, `ssh`, `providers`, `sim serve`.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 bad input (spec, credentials,
//! arguments).

mod init;
mod render;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;
use vre_core::{Error, Result, Role};

use crate::Components;
use crate::omitted::missing_feature_message;
use render::Renderer;

#[derive(Parser, Debug)]
#[command(
    name = "vre",
    version,
    about = "On-demand Virtual Research Environments: a Kubernetes cluster with shared storage, an edge load balancer and DNS, on any cloud, in one command",
    propagate_version = true
)]
struct Cli {
    /// The deployment directory (default: the current directory).
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// How progress and results are printed.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,

    /// More log output on stderr (repeat for more); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// A live progress display on a terminal, plain lines otherwise.
    Text,
    /// One JSON object per line: the events, then the result.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented vre.toml for a provider and an SSH key pair into a new directory.
    Init {
        /// A registered provider (`vre providers`); `local` runs on the embedded simulator.
        provider: String,
        /// The directory to create (must not exist or be empty).
        dir: PathBuf,
        /// Fill the spec for a community (`jupyter`, `workflow`, ...).
        #[arg(long)]
        preset: Option<String>,
        /// The cluster name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Show what apply would create, keep, replace and delete.
    Plan,
    /// Build or update the VRE to match vre.toml (resumes after any failure).
    Apply {
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Delete every resource of the VRE, found by its tags.
    Destroy {
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Change the node count of a role (drains nodes before deleting them).
    Scale {
        /// `<role>=<count>`, e.g. `service=5`.
        target: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Resources, nodes and endpoints of the VRE.
    Status,
    /// Print the path of the admin kubeconfig (`export KUBECONFIG=$(vre kubeconfig)`).
    Kubeconfig,
    /// Open an SSH session to a node (default: the master).
    Ssh {
        /// Node name or `<role>-<index>` (default: master-1).
        node: Option<String>,
        /// Extra arguments for ssh (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// List the registered cloud providers.
    Providers,
    /// The embedded simulator (cargo feature `local`).
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Subcommand, Debug)]
enum SimCommand {
    /// Keep the simulated cloud and cluster up so kubectl can talk to them, until Ctrl-C.
    Serve,
}

/// Runs the CLI with the standard components and the process's streams.
pub fn main() -> i32 {
    run(std::env::args_os(), &Components::standard())
}

/// Runs the CLI on `args` with `components` (tests register their own providers).
pub fn run<I, T>(args: I, components: &Components) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_with_output(args, components, &mut std::io::stdout())
}

/// [`run`], printing results to `out` (progress and errors still go to stderr).
pub fn run_with_output<I, T>(args: I, components: &Components, out: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let format = cli.output;
    let code = runtime.block_on(async move {
        let result = dispatch(cli, components, out).await;
        // the embedded simulator saves its state before the process ends
        #[cfg(feature = "local")]
        vre_local::shutdown_all().await;
        match result {
            Ok(()) => 0,
            Err(e) => {
                report_error(&e, format, out);
                e.exit_code()
            }
        }
    });
    // the simulator's servers must not keep the process alive
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // only logs go to stderr; a second init (tests) is harmless
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}

fn report_error(e: &Error, format: OutputFormat, out: &mut dyn Write) {
    match format {
        OutputFormat::Json => {
            let line = serde_json::json!({"event": "error", "exit_code": e.exit_code(), "message": e.to_string()});
            let _ = writeln!(out, "{line}");
        }
        OutputFormat::Text => {
            // spec problems are already one line each, located
            eprintln!("{}", render::error_text(e));
        }
    }
}

fn dir_of(cli_dir: &Option<PathBuf>) -> PathBuf {
    cli_dir.clone().unwrap_or_else(|| PathBuf::from("."))
}

async fn dispatch(cli: Cli, components: &Components, out: &mut dyn Write) -> Result<()> {
    let dir = dir_of(&cli.dir);
    let json = cli.output == OutputFormat::Json;
    match cli.command {
        Command::Init {
            provider,
            dir,
            preset,
            name,
        } => {
            if let Some(feature) = components.missing_feature(&provider) {
                let what = format!("the \"{provider}\" provider");
                return Err(Error::input("provider", missing_feature_message(&what, feature)));
            }
            let written = init::init(
                components.providers(),
                &provider,
                &dir,
                preset.as_deref(),
                name.as_deref(),
            )?;
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({"event": "initialized", "dir": dir, "files": written})
                );
            } else {
                let _ = writeln!(out, "Wrote {} in {}:", written.join(", "), dir.display());
                let _ = writeln!(
                    out,
                    "  next: edit {}/vre.toml, then `vre plan -C {0}` and `vre apply -C {0}`",
                    dir.display()
                );
            }
            Ok(())
        }
        Command::Providers => {
            for f in components.providers().factories() {
                if json {
                    let _ = writeln!(
                        out,
                        "{}",
                        serde_json::json!({"provider": f.name(), "table": f.table(), "description": f.description()})
                    );
                } else {
                    let _ = writeln!(out, "{:<10} {}", f.name(), f.description());
                }
            }
            Ok(())
        }
        Command::Plan => {
            let renderer = Renderer::new(json, false);
            let opened = components.open(&dir, renderer.sink(), None).await?;
            let plan = opened.deployment.plan().await;
            renderer.finish().await;
            let plan = plan?;
            if json {
                let _ = writeln!(out, "{}", serde_json::json!({"event": "plan", "plan": plan}));
            } else {
                let _ = writeln!(out, "{plan}");
            }
            Ok(())
        }
        Command::Apply { auto_approve } => apply(&dir, components, json, auto_approve, None, out).await,
        Command::Scale { target, auto_approve } => {
            let (role, count) = parse_scale(&target)?;
            apply(&dir, components, json, auto_approve, Some((role, count)), out).await
        }
        Command::Destroy { auto_approve } => destroy(&dir, components, json, auto_approve, out).await,
        Command::Status => {
            let renderer = Renderer::new(json, false);
            let opened = components.open(&dir, renderer.sink(), None).await?;
            let status = opened.deployment.status().await;
            renderer.finish().await;
            let status = status?;
            if json {
                let _ = writeln!(out, "{}", serde_json::json!({"event": "status", "status": status}));
            } else {
                let _ = write!(out, "{}", render::status_text(&status));
            }
            Ok(())
        }
        Command::Kubeconfig => {
            let path = dir.join("kubeconfig");
            if !path.exists() {
                return Err(Error::input(
                    "kubeconfig",
                    format!("{} does not exist yet; run `vre apply` first", path.display()),
                ));
            }
            let abs = std::fs::canonicalize(&path).unwrap_or(path);
            let _ = writeln!(out, "{}", abs.display());
            Ok(())
        }
        Command::Ssh { node, args } => ssh(&dir, components, node.as_deref(), &args).await,
        Command::Sim {
            command: SimCommand::Serve,
        } => sim_serve(&dir, components, json, out).await,
    }
}

fn parse_scale(target: &str) -> Result<(Role, u32)> {
    let (role, count) = target.split_once('=').ok_or_else(|| {
        Error::input(
            "scale",
            format!("\"{target}\" is not <role>=<count>; write for example `vre scale service=5`"),
        )
    })?;
    let role: Role = role.trim().parse().map_err(|e: String| Error::input("scale", e))?;
    let count: u32 = count.trim().parse().map_err(|_| {
        Error::input(
            "scale",
            format!("\"{count}\" is not a node count; write a whole number such as 5"),
        )
    })?;
    if role == Role::Master {
        return Err(Error::input(
            "scale",
            "a VRE has exactly one master; scale service, storage or edge",
        ));
    }
    Ok((role, count))
}

/// A watch channel that turns true on the first Ctrl-C; a second Ctrl-C exits at once.
fn ctrl_c_channel(renderer: &Renderer) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let sink = renderer.sink();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            sink.warn("interrupted: finishing the running steps and saving state (Ctrl-C again to quit now)");
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("quit; run the same command again to resume");
                std::process::exit(130);
            }
        }
    });
    rx
}

fn confirm(question: &str, auto_approve: bool) -> Result<bool> {
    if auto_approve {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::input(
            "--auto-approve",
            "stdin is not a terminal, so vre cannot ask; pass --auto-approve to go ahead without asking",
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::io("reading the answer", e))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

async fn apply(
    dir: &Path,
    components: &Components,
    json: bool,
    auto_approve: bool,
    scale: Option<(Role, u32)>,
    out: &mut dyn Write,
) -> Result<()> {
    let renderer = Renderer::new(json, !json && std::io::stderr().is_terminal());
    let cancel = ctrl_c_channel(&renderer);
    let opened = components.open(dir, renderer.sink(), Some(cancel)).await?;
    let (deployment, rewrite) = match scale {
        Some((role, count)) => (opened.deployment.scaled(role, count)?, Some((role, count))),
        None => (opened.deployment, None),
    };
    if !auto_approve || !json {
        let plan = deployment.plan().await?;
        if !json {
            let _ = writeln!(out, "{plan}");
        }
        if !confirm("Apply this plan?", auto_approve)? {
            renderer.finish().await;
            let _ = writeln!(out, "Nothing done.");
            return Ok(());
        }
    }
    if let Some((role, count)) = rewrite {
        // the spec file follows the scale, so the next apply keeps it
        init::set_count(&opened.loaded, role, count)?;
    }
    let result = deployment.apply().await;
    renderer.finish().await;
    let report = result?;
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"event": "result", "operation": "apply", "report": report})
        );
    } else {
        let _ = write!(out, "{}", render::apply_text(&report, dir));
    }
    Ok(())
}

async fn destroy(
    dir: &Path,
    components: &Components,
    json: bool,
    auto_approve: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let renderer = Renderer::new(json, !json && std::io::stderr().is_terminal());
    let opened = components.open(dir, renderer.sink(), None).await?;
    let question = format!(
        "Destroy every resource of VRE \"{}\" on {}?",
        opened.loaded.spec.name, opened.loaded.spec.provider
    );
    if !confirm(&question, auto_approve)? {
        renderer.finish().await;
        let _ = writeln!(out, "Nothing done.");
        return Ok(());
    }
    let result = opened.deployment.destroy().await;
    renderer.finish().await;
    let report = result?;
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"event": "result", "operation": "destroy", "report": report})
        );
    } else {
        let _ = writeln!(
            out,
            "Destroyed {} resources of \"{}\" in {:.1}s.",
            report.deleted.len(),
            opened.loaded.spec.name,
            report.elapsed.as_secs_f64()
        );
        for k in &report.kept {
            let _ = writeln!(
                out,
                "  kept {} {} (images are not deleted; remove it by hand if unused)",
                k.kind, k.name
            );
        }
    }
    Ok(())
}

async fn ssh(dir: &Path, components: &Components, node: Option<&str>, args: &[String]) -> Result<()> {
    let renderer = Renderer::new(false, false);
    let opened = components.open(dir, renderer.sink(), None).await?;
    let spec = &opened.loaded.spec;
    let state = vre_core::StateStore::read(&dir.join(".vre/state.json"))?
        .ok_or_else(|| Error::input("ssh", "the VRE has not been applied yet; run `vre apply` first"))?;
    let wanted = node.unwrap_or("master-1");
    let (role, index) = match vre_core::ResourceKey::server_from_name(&spec.name, wanted)
        .or_else(|| vre_core::ResourceKey::server_from_name(&spec.name, &format!("{}-{wanted}", spec.name)))
    {
        Some(n) => n,
        None => {
            return Err(Error::input(
                "ssh",
                format!(
                    "no node \"{wanted}\"; name one like `{}-service-1` or `service-1`",
                    spec.name
                ),
            ));
        }
    };
    let address = state
        .resources
        .get(&vre_core::ResourceKey::public_ip(role, index))
        .and_then(|r| r.attr(vre_core::attr::ADDRESS))
        .ok_or_else(|| {
            Error::input(
                "ssh",
                format!(
                    "{} has no public IP; set `public_ip = true` in [nodes.{role}] or ssh through the master",
                    spec.node_name(role, index)
                ),
            )
        })?;
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| Error::component("ssh", format!("the state holds an invalid address \"{address}\"")))?;
    let target = opened
        .deployment
        .dialer()
        .dial(std::net::SocketAddr::new(ip, 22))
        .await?;
    renderer.finish().await;
    let key = dir.join("ssh_key");
    let status = std::process::Command::new("ssh")
        .arg("-i")
        .arg(&key)
        .args(["-o", "StrictHostKeyChecking=accept-new", "-p"])
        .arg(target.port().to_string())
        .arg(format!("{}@{}", spec.ssh.user, target.ip()))
        .args(args)
        .status()
        .map_err(|e| Error::io("running ssh (is OpenSSH installed?)", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::component("ssh", format!("ssh exited with {status}")))
    }
}

#[cfg(feature = "local")]
async fn sim_serve(dir: &Path, components: &Components, json: bool, out: &mut dyn Write) -> Result<()> {
    let renderer = Renderer::new(json, false);
    let opened = components.open(dir, renderer.sink(), None).await?;
    if opened.loaded.spec.provider != vre_local::PROVIDER {
        return Err(Error::input(
            "provider",
            format!(
                "`vre sim serve` needs provider = \"local\", this VRE uses \"{}\"",
                opened.loaded.spec.provider
            ),
        ));
    }
    let endpoints = vre_local::endpoints(dir);
    renderer.finish().await;
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"event": "serving", "endpoints": endpoints})
        );
    } else {
        for (name, url) in &endpoints {
            let _ = writeln!(out, "{name:<12} {url}");
        }
        let _ = writeln!(out, "Serving the simulated cloud and cluster; Ctrl-C to stop.");
    }
    let _ = tokio::signal::ctrl_c().await;
    drop(opened);
    Ok(())
}

/// Without the simulator compiled in, `vre sim serve` says which feature it needs.
#[cfg(not(feature = "local"))]
async fn sim_serve(_dir: &Path, _components: &Components, _json: bool, _out: &mut dyn Write) -> Result<()> {
    Err(Error::input("sim", missing_feature_message("`vre sim serve`", "local")))
}

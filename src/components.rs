//! Which cloud providers, orchestrator, microservices and DNS a deployment
//! is assembled from. The CLI uses [`Components::standard`]; a community's
//! own tool can register its cloud or replace any part.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use vre_core::spec::LoadedSpec;
use vre_core::{
    Deployment, Dns, Error, EventSink, Microservice, Orchestrator, ProviderContext, ProviderFactory, ProviderRegistry,
    Result,
};

type OrchestratorFactory = dyn Fn(&LoadedSpec) -> Result<Arc<dyn Orchestrator>> + Send + Sync;
type MicroserviceFactory = dyn Fn(&LoadedSpec) -> Result<Vec<Arc<dyn Microservice>>> + Send + Sync;
type DnsFactory = dyn Fn(&LoadedSpec, &BTreeMap<String, String>) -> Result<Option<Arc<dyn Dns>>> + Send + Sync;

/// The parts a deployment is built from.
#[derive(Clone)]
pub struct Components {
    providers: ProviderRegistry,
    orchestrator: Arc<OrchestratorFactory>,
    microservices: Arc<MicroserviceFactory>,
    dns: Arc<DnsFactory>,
    env: Option<BTreeMap<String, String>>,
    /// Built-in providers left out of this build, by name: the cargo
    /// feature that brings each in (a stand-in is registered for each).
    omitted: BTreeMap<String, &'static str>,
}

/// A deployment directory, opened: its spec (with locations for messages)
/// and the deployment built from it.
pub struct Opened {
    /// The spec as read from `vre.toml`, with its source for located messages.
    pub loaded: LoadedSpec,
    /// The deployment assembled from it.
    pub deployment: Deployment,
}

impl Default for Components {
    fn default() -> Self {
        Self::standard()
    }
}

impl Components {
    /// Every built-in provider compiled in (local, openstack, aws, gcp,
    /// azure: one cargo feature each), the Kubernetes orchestrator, the
    /// storage / load-balancer / app microservices and DNS the spec asks for.
    ///
    /// A built-in provider whose feature is off is registered as a stand-in:
    /// a spec naming it fails validation with a message naming the feature.
    pub fn standard() -> Self {
        let mut providers = ProviderRegistry::new();
        let mut omitted = BTreeMap::new();
        for stand_in in crate::omitted::omitted_providers() {
            omitted.insert(stand_in.name().to_string(), stand_in.feature());
            providers.register(stand_in);
        }
        #[cfg(feature = "local")]
        providers.register(Arc::new(vre_local::LocalFactory));
        #[cfg(feature = "openstack")]
        providers.register(Arc::new(vre_openstack::OpenStackFactory));
        #[cfg(feature = "aws")]
        providers.register(Arc::new(vre_aws::AwsFactory));
        #[cfg(feature = "gcp")]
        providers.register(Arc::new(vre_gcp::GcpFactory));
        #[cfg(feature = "azure")]
        providers.register(Arc::new(vre_azure::AzureFactory));
        Components {
            providers,
            orchestrator: Arc::new(standard_orchestrator),
            microservices: Arc::new(standard_microservices),
            dns: Arc::new(standard_dns),
            env: None,
            omitted,
        }
    }

    /// Adds (or replaces) a cloud provider.
    pub fn register_provider(&mut self, factory: Arc<dyn ProviderFactory>) -> &mut Self {
        self.omitted.remove(factory.name());
        self.providers.register(factory);
        self
    }

    /// The cargo feature that would compile in the built-in provider
    /// `name`, when this build leaves it out (and nothing replaced it).
    pub fn missing_feature(&self, name: &str) -> Option<&'static str> {
        self.omitted.get(name).copied()
    }

    /// Replaces the orchestrator.
    pub fn orchestrator(
        &mut self,
        f: impl Fn(&LoadedSpec) -> Result<Arc<dyn Orchestrator>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.orchestrator = Arc::new(f);
        self
    }

    /// Replaces how the microservices are chosen for a spec.
    pub fn microservices(
        &mut self,
        f: impl Fn(&LoadedSpec) -> Result<Vec<Arc<dyn Microservice>>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.microservices = Arc::new(f);
        self
    }

    /// Replaces how DNS is chosen for a spec.
    pub fn dns(
        &mut self,
        f: impl Fn(&LoadedSpec, &BTreeMap<String, String>) -> Result<Option<Arc<dyn Dns>>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.dns = Arc::new(f);
        self
    }

    /// Uses these environment variables instead of the process's (tests).
    pub fn env(&mut self, env: BTreeMap<String, String>) -> &mut Self {
        self.env = Some(env);
        self
    }

    /// The registered cloud providers (stand-ins for left-out built-ins included).
    pub fn providers(&self) -> &ProviderRegistry {
        &self.providers
    }

    fn environment(&self) -> BTreeMap<String, String> {
        self.env.clone().unwrap_or_else(|| std::env::vars().collect())
    }

    /// Reads `<dir>/vre.toml` (every problem at once), resolves the
    /// provider's credentials (no network call) and assembles the deployment.
    pub async fn open(&self, dir: &Path, events: EventSink, cancel: Option<watch::Receiver<bool>>) -> Result<Opened> {
        let loaded = self.providers.load_spec(dir)?;
        self.assemble(loaded, events, cancel).await
    }

    /// A deployment for a spec built in code, in directory `dir` (state,
    /// keys and kubeconfig go there). The spec is validated first, the
    /// provider's table included; every problem comes back at once.
    pub async fn deployment(&self, spec: vre_core::ClusterSpec, dir: &Path, events: EventSink) -> Result<Deployment> {
        let mut diags = vre_core::spec::Diagnostics::new();
        for (field, message) in vre_core::spec::validate(&spec) {
            diags.error(&field, None, message);
        }
        match self.providers.get(&spec.provider) {
            Some(f) => f.check_table(&spec, &mut diags),
            None => diags.error(
                "provider",
                None,
                format!(
                    "unknown provider \"{}\"; registered: {}",
                    spec.provider,
                    self.providers.names().join(", ")
                ),
            ),
        }
        if !diags.is_empty() {
            return Err(Error::Spec(diags));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let loaded = LoadedSpec {
            spec,
            dir: dir.to_path_buf(),
            source: Default::default(),
            spans: Default::default(),
        };
        Ok(self.assemble(loaded, events, None).await?.deployment)
    }

    /// Assembles a deployment for a spec already loaded.
    pub async fn assemble(
        &self,
        loaded: LoadedSpec,
        events: EventSink,
        cancel: Option<watch::Receiver<bool>>,
    ) -> Result<Opened> {
        let env = self.environment();
        let spec = Arc::new(loaded.spec.clone());
        let ctx = ProviderContext {
            spec: spec.clone(),
            dir: loaded.dir.clone(),
            events: events.clone(),
            env: env.clone(),
            dialer: Default::default(),
        };
        // the factory may install a dialer (the simulator's) into the slot
        let dialer = ctx.dialer.clone();
        // DNS credentials are checked before the provider starts anything
        let dns = (self.dns)(&loaded, &env)?;
        let provider = self.providers.build(ctx).await?;
        let orchestrator = (self.orchestrator)(&loaded)?;
        let public_key = loaded.public_key().map_err(|e| {
            Error::input(
                "ssh.public_key",
                format!(
                    "cannot read {}: {e}",
                    loaded.dir.join(&loaded.spec.ssh.public_key).display()
                ),
            )
        })?;
        let mut b = Deployment::builder(loaded.spec.clone(), &loaded.dir)
            .provider(provider)
            .dialer(dialer.get())
            .orchestrator(orchestrator)
            .events(events)
            .public_key(public_key);
        for m in (self.microservices)(&loaded)? {
            b = b.microservice(m);
        }
        if let Some(d) = dns {
            b = b.dns(d);
        }
        if let Some(c) = cancel {
            b = b.cancel(c);
        }
        Ok(Opened {
            deployment: b.build()?,
            loaded,
        })
    }
}

fn standard_orchestrator(loaded: &LoadedSpec) -> Result<Arc<dyn Orchestrator>> {
    Ok(Arc::new(vre_kubernetes::KubernetesOrchestrator::new(
        loaded.dir.clone(),
        vre_kubernetes::KubernetesOptions::default(),
    )))
}

fn standard_dns(loaded: &LoadedSpec, _env: &BTreeMap<String, String>) -> Result<Option<Arc<dyn Dns>>> {
    vre_dns::from_spec(&loaded.spec.dns)
}

/// Shared storage, object storage, the edge load balancer and the apps the
/// spec turns on, in dependency order.
fn standard_microservices(loaded: &LoadedSpec) -> Result<Vec<Arc<dyn Microservice>>> {
    let spec = &loaded.spec;
    let mut out: Vec<Arc<dyn Microservice>> = Vec::new();
    if spec.storage.enabled {
        out.push(Arc::new(vre_storage::SharedStorage::new()));
        if spec.storage.object_storage {
            out.push(Arc::new(vre_storage::ObjectStorage::new()));
        }
    }
    if spec.loadbalancer.enabled {
        out.push(Arc::new(vre_loadbalancer::Traefik::new()));
    }
    out.extend(vre_apps::apps_from_spec(spec));
    Ok(out)
}

//! The simulated cloud through its OpenStack API, as an operator would use
//! it with the `openstack` CLI: what the project `vre` holds, by name and
//! id, to find duplicates and leftovers; and deleting a server by hand.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::http::Http;

/// The things of one kind: name -> the ids carrying it.
pub type Names = BTreeMap<String, Vec<String>>;

/// What the project holds, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub servers: Names,
    pub volumes: Names,
    /// Floating IPs by description (vre writes the node's IP name there).
    pub floating_ips: Names,
    /// Ports by the server they belong to (`device_id`), router ports by the router.
    pub ports: Names,
    pub networks: Names,
    pub subnets: Names,
    pub routers: Names,
    /// Without the `default` group Neutron makes for every project.
    pub security_groups: Names,
    pub key_pairs: Names,
}

impl Inventory {
    fn kinds(&self) -> [(&'static str, &Names); 9] {
        [
            ("server", &self.servers),
            ("volume", &self.volumes),
            ("floating IP", &self.floating_ips),
            ("port", &self.ports),
            ("network", &self.networks),
            ("subnet", &self.subnets),
            ("router", &self.routers),
            ("security group", &self.security_groups),
            ("key pair", &self.key_pairs),
        ]
    }

    /// `kind name xN` for every name carried by more than one resource of
    /// its kind (ports excepted: a server has one port, a router several).
    pub fn duplicates(&self) -> Vec<String> {
        self.kinds()
            .iter()
            .filter(|(k, _)| *k != "port")
            .flat_map(|(kind, names)| {
                names
                    .iter()
                    .filter(|(_, ids)| ids.len() > 1)
                    .map(move |(name, ids)| format!("{kind} {name} x{}", ids.len()))
            })
            .collect()
    }

    /// `kind name` of everything there.
    pub fn everything(&self) -> Vec<String> {
        self.kinds()
            .iter()
            .flat_map(|(kind, names)| names.keys().map(move |name| format!("{kind} {name}")))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds().iter().all(|(_, n)| n.is_empty())
    }
}

/// A Keystone-authenticated client of the project `vre`.
pub struct OpenStackApi {
    http: Http,
    token: String,
    compute: String,
    network: String,
    volume: String,
    /// Neutron shows an admin every project's resources unless asked for one.
    project_id: String,
}

impl OpenStackApi {
    /// Authenticates as `admin` in project `vre` (domain `Default`).
    pub fn login(auth_url: &str, password: &str) -> Result<OpenStackApi, String> {
        let http = Http::new();
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": "vre", "domain": {"name": "Default"}}}
        }});
        let url = format!("{}/auth/tokens", auth_url.trim_end_matches('/'));
        let (token, catalog, project_id) = http.block_on(async {
            let r = http
                .client()
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            if r.status().as_u16() != 201 {
                return Err(format!("POST {url}: {}", r.status()));
            }
            let token = r
                .headers()
                .get("x-subject-token")
                .and_then(|v| v.to_str().ok())
                .ok_or("no X-Subject-Token in Keystone's answer")?
                .to_string();
            let v: Value = r.json().await.map_err(|e| format!("POST {url}: {e}"))?;
            let project = v["token"]["project"]["id"].as_str().unwrap_or_default().to_string();
            Ok((token, v["token"]["catalog"].clone(), project))
        })?;
        let endpoint = |kind: &str| -> Result<String, String> {
            catalog
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["type"] == kind)
                .and_then(|s| {
                    s["endpoints"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|e| e["interface"] == "public")
                })
                .and_then(|e| e["url"].as_str())
                .map(|u| u.trim_end_matches('/').to_string())
                .ok_or_else(|| format!("no public {kind} endpoint in the catalog"))
        };
        Ok(OpenStackApi {
            compute: endpoint("compute")?,
            network: endpoint("network")?,
            volume: endpoint("volumev3")?,
            token,
            http,
            project_id,
        })
    }

    /// Nova's endpoint (`.../compute/v2.1`).
    pub fn compute_url(&self) -> &str {
        &self.compute
    }

    /// The Keystone token (`X-Auth-Token`).
    pub fn token(&self) -> &str {
        &self.token
    }

    fn get(&self, url: &str) -> Result<Value, String> {
        self.http.block_on(async {
            let r = self
                .http
                .client()
                .get(url)
                .header("X-Auth-Token", &self.token)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = r.status();
            let text = r.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            if !status.is_success() {
                return Err(format!("GET {url}: {status}: {text}"));
            }
            serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}"))
        })
    }

    /// Every item of a paginated listing (`<kind>_links` with rel `next`).
    fn list(&self, url: &str, key: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        let mut next = Some(url.to_string());
        while let Some(u) = next.take() {
            let v = self.get(&u)?;
            let items = v[key].as_array().ok_or_else(|| format!("GET {u}: no \"{key}\" list"))?;
            out.extend(items.iter().cloned());
            next = v[format!("{key}_links")]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["rel"] == "next")
                .and_then(|l| l["href"].as_str())
                .map(str::to_string)
                .filter(|_| !items.is_empty());
        }
        Ok(out)
    }

    /// `DELETE /servers/{id}` (202).
    pub fn delete_server(&self, id: &str) -> Result<(), String> {
        let url = format!("{}/servers/{id}", self.compute);
        self.http.block_on(async {
            let r = self
                .http
                .client()
                .delete(&url)
                .header("X-Auth-Token", &self.token)
                .send()
                .await
                .map_err(|e| format!("DELETE {url}: {e}"))?;
            match r.status().as_u16() {
                202 | 204 | 404 => Ok(()),
                s => Err(format!("DELETE {url}: {s}: {}", r.text().await.unwrap_or_default())),
            }
        })
    }

    /// Everything the project holds, by kind and name.
    pub fn inventory(&self) -> Result<Inventory, String> {
        let count = |items: Vec<Value>, name: &dyn Fn(&Value) -> Option<String>| -> Names {
            let mut m = Names::new();
            for i in &items {
                let id = i["id"].as_str().or(i["name"].as_str()).unwrap_or("?").to_string();
                let n = name(i).unwrap_or_else(|| format!("<id {id}>"));
                m.entry(n).or_default().push(id);
            }
            m
        };
        let field = |f: &'static str| move |v: &Value| v[f].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let n = &self.network;
        let p = format!("project_id={}", self.project_id);
        let project_networks: Vec<Value> = self
            .list(&format!("{n}/v2.0/networks?{p}"), "networks")?
            .into_iter()
            .filter(|v| v["router:external"] != true)
            .collect();
        Ok(Inventory {
            servers: count(
                self.list(&format!("{}/servers/detail?limit=1000", self.compute), "servers")?,
                &field("name"),
            ),
            volumes: count(
                self.list(&format!("{}/volumes/detail?limit=1000", self.volume), "volumes")?,
                &field("name"),
            ),
            floating_ips: count(
                self.list(&format!("{n}/v2.0/floatingips?{p}"), "floatingips")?,
                &field("description"),
            ),
            ports: count(self.list(&format!("{n}/v2.0/ports?{p}"), "ports")?, &|port: &Value| {
                Some(format!(
                    "{}:{}",
                    port["device_owner"].as_str().unwrap_or(""),
                    port["device_id"].as_str().unwrap_or("")
                ))
            }),
            networks: count(project_networks, &field("name")),
            subnets: count(
                self.list(&format!("{n}/v2.0/subnets?{p}"), "subnets")?
                    .into_iter()
                    .filter(|s| s["name"] != "public-subnet")
                    .collect(),
                &field("name"),
            ),
            routers: count(self.list(&format!("{n}/v2.0/routers?{p}"), "routers")?, &field("name")),
            security_groups: count(
                self.list(&format!("{n}/v2.0/security-groups?{p}"), "security_groups")?
                    .into_iter()
                    .filter(|g| g["name"] != "default")
                    .collect(),
                &field("name"),
            ),
            key_pairs: count(
                self.list(&format!("{}/os-keypairs", self.compute), "keypairs")?
                    .into_iter()
                    .map(|k| k["keypair"].clone())
                    .collect(),
                &field("name"),
            ),
        })
    }
}

//! Authentication (client certificates signed by the cluster CA, bootstrap
//! tokens, the static admin token, anonymous) and RBAC authorization over
//! the Roles and Bindings in the store, with the bootstrap policy a fresh
//! kubeadm cluster has.

use base64::Engine;
use serde_json::{Value, json};

use super::clock;
use super::cluster::{CORE, State, gr};
use super::status::ApiError;

const RBAC: &str = "rbac.authorization.k8s.io";

/// An authenticated (or anonymous) user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn anonymous() -> Self {
        User {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    fn is_member(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What a request presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    None,
    Bearer(String),
    /// A client certificate already verified against the cluster CA:
    /// its subject CN and O values.
    ClientCert {
        common_name: String,
        organizations: Vec<String>,
    },
}

/// The name of the static admin token's user.
pub const ADMIN_USER: &str = "vre-sim:admin";

/// Resolves a credential to a user; invalid credentials are 401.
pub fn authenticate(st: &State, admin_token: &str, cred: &Credential) -> Result<User, ApiError> {
    match cred {
        Credential::None => Ok(User::anonymous()),
        Credential::ClientCert {
            common_name,
            organizations,
        } => {
            let mut groups = organizations.clone();
            groups.push("system:authenticated".into());
            Ok(User {
                name: common_name.clone(),
                uid: String::new(),
                groups,
            })
        }
        Credential::Bearer(token) => {
            if !admin_token.is_empty() && constant_time_eq(token.as_bytes(), admin_token.as_bytes()) {
                return Ok(User {
                    name: ADMIN_USER.into(),
                    uid: String::new(),
                    groups: vec!["system:masters".into(), "system:authenticated".into()],
                });
            }
            bootstrap_token_user(st, token).ok_or_else(ApiError::unauthorized)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A bootstrap token's Secret fields, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSecret {
    pub id: String,
    pub secret: String,
    pub expiration: Option<i64>,
    pub authentication: bool,
    pub signing: bool,
    pub extra_groups: Vec<String>,
}

impl TokenSecret {
    pub fn expired(&self) -> bool {
        self.expiration.is_some_and(|e| e <= clock::now_unix())
    }
}

/// Reads `kube-system/bootstrap-token-<id>` (type bootstrap.kubernetes.io/token).
pub fn token_secret(st: &State, id: &str) -> Option<TokenSecret> {
    let s = st
        .store
        .get(&gr(CORE, "secrets"), "kube-system", &format!("bootstrap-token-{id}"))?;
    if s.get("type").and_then(Value::as_str) != Some("bootstrap.kubernetes.io/token") {
        return None;
    }
    let data = s.get("data")?;
    let field = |k: &str| -> Option<String> {
        let b = data.get(k)?.as_str()?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
        String::from_utf8(raw).ok()
    };
    Some(TokenSecret {
        id: field("token-id")?,
        secret: field("token-secret")?,
        expiration: field("expiration").and_then(|e| clock::parse_rfc3339(&e)),
        authentication: field("usage-bootstrap-authentication").as_deref() == Some("true"),
        signing: field("usage-bootstrap-signing").as_deref() == Some("true"),
        extra_groups: field("auth-extra-groups")
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Splits `abcdef.0123456789abcdef` into id and secret, checking the format.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

fn bootstrap_token_user(st: &State, token: &str) -> Option<User> {
    let (id, secret) = parse_token(token)?;
    let t = token_secret(st, id)?;
    if !t.authentication || t.expired() || !constant_time_eq(t.secret.as_bytes(), secret.as_bytes()) {
        return None;
    }
    let mut groups = vec!["system:bootstrappers".to_string()];
    groups.extend(t.extra_groups);
    groups.push("system:authenticated".into());
    Some(User {
        name: format!("system:bootstrap:{id}"),
        uid: String::new(),
        groups,
    })
}

/// What a request wants to do, for authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attributes {
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

impl Attributes {
    /// The 403 body for a denied request, worded like the real server.
    pub fn forbidden(&self, user: &User) -> ApiError {
        match self {
            Attributes::Resource {
                verb,
                group,
                resource,
                subresource,
                namespace,
                name,
            } => {
                let full = if subresource.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}/{subresource}")
                };
                let subject = if name.is_empty() {
                    super::status::qualified(group, resource)
                } else {
                    format!("{} \"{name}\"", super::status::qualified(group, resource))
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace \"{namespace}\"")
                };
                let mut e = ApiError::forbidden(format!(
                    "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{full}\" in API group \"{group}\" {scope}",
                    user.name
                ));
                e.details.group = (!group.is_empty()).then(|| group.clone());
                e.details.kind = Some(resource.clone());
                e.details.name = (!name.is_empty()).then(|| name.clone());
                e
            }
            Attributes::NonResource { verb, path } => ApiError::forbidden(format!(
                "forbidden: User \"{}\" cannot {verb} path \"{path}\"",
                user.name
            )),
        }
    }
}

/// RBAC: whether any binding grants the request to the user.
pub fn authorize(st: &State, user: &User, attrs: &Attributes) -> bool {
    if user.is_member("system:masters") {
        return true;
    }
    let crbs = gr(RBAC, "clusterrolebindings");
    for (_, b) in st.store.list(&crbs, None) {
        if binds(b, user) && role_allows(st, b, "", attrs) {
            return true;
        }
    }
    if let Attributes::Resource { namespace, .. } = attrs
        && !namespace.is_empty()
    {
        let rbs = gr(RBAC, "rolebindings");
        for (_, b) in st.store.list(&rbs, Some(namespace)) {
            if binds(b, user) && role_allows(st, b, namespace, attrs) {
                return true;
            }
        }
    }
    false
}

fn binds(binding: &Value, user: &User) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            match s.get("kind").and_then(Value::as_str) {
                Some("User") => name == user.name,
                Some("Group") => user.is_member(name),
                Some("ServiceAccount") => {
                    let ns = s.get("namespace").and_then(Value::as_str).unwrap_or("");
                    user.name == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            }
        })
}

fn role_allows(st: &State, binding: &Value, namespace: &str, attrs: &Attributes) -> bool {
    let Some(role_ref) = binding.get("roleRef") else {
        return false;
    };
    let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
    let role = match role_ref.get("kind").and_then(Value::as_str) {
        Some("ClusterRole") => st.store.get(&gr(RBAC, "clusterroles"), "", name),
        Some("Role") if !namespace.is_empty() => st.store.get(&gr(RBAC, "roles"), namespace, name),
        _ => None,
    };
    let Some(role) = role else { return false };
    let mut rules: Vec<&Value> = role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    // Aggregated ClusterRoles: the rules of every ClusterRole their selectors match.
    let aggregated: Vec<std::sync::Arc<Value>> = aggregated_roles(st, role);
    for r in &aggregated {
        rules.extend(r.get("rules").and_then(Value::as_array).into_iter().flatten());
    }
    rules.iter().any(|r| rule_allows(r, attrs))
}

fn aggregated_roles(st: &State, role: &Value) -> Vec<std::sync::Arc<Value>> {
    let Some(selectors) = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let parsed: Vec<_> = selectors
        .iter()
        .filter_map(|s| super::selector::LabelSelector::from_object(Some(s)).ok())
        .collect();
    st.store
        .list(&gr(RBAC, "clusterroles"), None)
        .filter(|(_, r)| parsed.iter().any(|s| s.matches_object(r)))
        .map(|(_, r)| r.clone())
        .collect()
}

fn has(list: Option<&Value>, want: &str) -> bool {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|x| x == "*" || x == want)
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    match attrs {
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            if !has(rule.get("verbs"), verb) || !has(rule.get("apiGroups"), group) {
                return false;
            }
            let full = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let resource_ok = rule
                .get("resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|r| {
                    r == "*"
                        || r == full
                        || (subresource.is_empty() && r == resource)
                        || (!subresource.is_empty()
                            && (r == format!("*/{subresource}") || r == format!("{resource}/*")))
                });
            if !resource_ok {
                return false;
            }
            match rule.get("resourceNames").and_then(Value::as_array) {
                Some(names) if !names.is_empty() => !name.is_empty() && names.iter().any(|n| n == name.as_str()),
                _ => true,
            }
        }
        Attributes::NonResource { verb, path } => {
            has(rule.get("verbs"), verb)
                && rule
                    .get("nonResourceURLs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)))
        }
    }
}

/// The answer of a (Self)SubjectAccessReview.
pub fn access_review(st: &State, user: &User, spec: &Value) -> Value {
    let attrs = if let Some(r) = spec.get("resourceAttributes") {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Attributes::Resource {
            verb: s("verb"),
            group: s("group"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: s("namespace"),
            name: s("name"),
        }
    } else {
        let n = spec.get("nonResourceAttributes").cloned().unwrap_or(json!({}));
        Attributes::NonResource {
            verb: n.get("verb").and_then(Value::as_str).unwrap_or("").to_string(),
            path: n.get("path").and_then(Value::as_str).unwrap_or("").to_string(),
        }
    };
    let allowed = authorize(st, user, &attrs);
    let mut status = json!({"allowed": allowed});
    if allowed {
        status["reason"] = json!(if user.is_member("system:masters") {
            ""
        } else {
            "RBAC: allowed by a role binding"
        });
    }
    status
}

fn rbac_obj(kind: &str, name: &str, namespace: Option<&str>, body: Value) -> Value {
    let mut v = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
    });
    if let Some(ns) = namespace {
        v["metadata"]["namespace"] = json!(ns);
    }
    if let (Some(m), Value::Object(b)) = (v.as_object_mut(), body) {
        m.extend(b);
    }
    v
}

fn group_subject(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

/// The RBAC objects of a fresh kubeadm cluster that matter to clients.
pub fn bootstrap_policy() -> Vec<(&'static str, &'static str, Value)> {
    let crole = |name: &str, rules: Value| {
        (
            RBAC,
            "clusterroles",
            rbac_obj("ClusterRole", name, None, json!({"rules": rules})),
        )
    };
    let crb = |name: &str, role: &str, subjects: Value| {
        (
            RBAC,
            "clusterrolebindings",
            rbac_obj(
                "ClusterRoleBinding",
                name,
                None,
                json!({"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": subjects}),
            ),
        )
    };
    let role =
        |ns: &str, name: &str, rules: Value| (RBAC, "roles", rbac_obj("Role", name, Some(ns), json!({"rules": rules})));
    let rb = |ns: &str, name: &str, role: &str, subjects: Value| {
        (
            RBAC,
            "rolebindings",
            rbac_obj(
                "RoleBinding",
                name,
                Some(ns),
                json!({"roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role}, "subjects": subjects}),
            ),
        )
    };
    let read = json!(["get", "list", "watch"]);
    vec![
        crole(
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        crb(
            "cluster-admin",
            "cluster-admin",
            json!([group_subject("system:masters")]),
        ),
        crb(
            "kubeadm:cluster-admins",
            "cluster-admin",
            json!([group_subject("kubeadm:cluster-admins")]),
        ),
        crole(
            "system:discovery",
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        crb(
            "system:discovery",
            "system:discovery",
            json!([group_subject("system:authenticated")]),
        ),
        crole(
            "system:public-info-viewer",
            json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        crb(
            "system:public-info-viewer",
            "system:public-info-viewer",
            json!([
                group_subject("system:authenticated"),
                group_subject("system:unauthenticated")
            ]),
        ),
        crole(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}
            ]),
        ),
        crb(
            "system:basic-user",
            "system:basic-user",
            json!([group_subject("system:authenticated")]),
        ),
        crole(
            "view",
            json!([{"apiGroups": ["", "apps", "batch", "networking.k8s.io", "policy", "autoscaling", "discovery.k8s.io"],
                "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "pods", "replicationcontrollers", "services", "serviceaccounts",
                    "events", "namespaces", "daemonsets", "deployments", "replicasets", "statefulsets", "jobs", "cronjobs", "ingresses",
                    "networkpolicies", "poddisruptionbudgets", "horizontalpodautoscalers", "endpointslices", "pods/log", "pods/status"],
                "verbs": read}]),
        ),
        crole(
            "system:node-bootstrapper",
            json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get", "list", "watch"]}]),
        ),
        crb(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            json!([group_subject("system:bootstrappers:kubeadm:default-node-token")]),
        ),
        crole(
            "kubeadm:get-nodes",
            json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]),
        ),
        crb(
            "kubeadm:get-nodes",
            "kubeadm:get-nodes",
            json!([group_subject("system:bootstrappers:kubeadm:default-node-token")]),
        ),
        role(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"], "verbs": ["get"]}]),
        ),
        rb(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            "kubeadm:bootstrap-signer-clusterinfo",
            json!([{"kind": "User", "apiGroup": RBAC, "name": "system:anonymous"}]),
        ),
        role(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubeadm-config"], "verbs": ["get"]}]),
        ),
        rb(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            "kubeadm:nodes-kubeadm-config",
            json!([
                group_subject("system:bootstrappers:kubeadm:default-node-token"),
                group_subject("system:nodes")
            ]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::catalog::Catalog;
    use crate::kube::store::Store;

    fn state() -> State {
        let mut st = State {
            store: Store::new(0),
            catalog: Catalog::new(),
        };
        for (g, r, o) in bootstrap_policy() {
            st.store.put(&gr(g, r), o);
        }
        st
    }

    fn res(verb: &str, resource: &str, ns: &str, name: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: String::new(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn anonymous_reads_only_public_info() {
        let st = state();
        let anon = User::anonymous();
        assert!(authorize(
            &st,
            &anon,
            &Attributes::NonResource {
                verb: "get".into(),
                path: "/version".into()
            }
        ));
        assert!(!authorize(
            &st,
            &anon,
            &Attributes::NonResource {
                verb: "get".into(),
                path: "/api".into()
            }
        ));
        assert!(authorize(
            &st,
            &anon,
            &res("get", "configmaps", "kube-public", "cluster-info")
        ));
        assert!(!authorize(
            &st,
            &anon,
            &res("get", "configmaps", "kube-public", "other")
        ));
        assert!(!authorize(&st, &anon, &res("list", "pods", "default", "")));
        let e = res("list", "pods", "default", "").forbidden(&anon);
        assert_eq!(
            e.message,
            "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
    }

    #[test]
    fn masters_and_bootstrappers() {
        let st = state();
        let admin = User {
            name: "kubernetes-admin".into(),
            uid: String::new(),
            groups: vec!["kubeadm:cluster-admins".into(), "system:authenticated".into()],
        };
        assert!(authorize(&st, &admin, &res("delete", "nodes", "", "n1")));
        let boot = User {
            name: "system:bootstrap:abcdef".into(),
            uid: String::new(),
            groups: vec![
                "system:bootstrappers".into(),
                "system:bootstrappers:kubeadm:default-node-token".into(),
                "system:authenticated".into(),
            ],
        };
        assert!(authorize(&st, &boot, &res("get", "nodes", "", "n1")));
        assert!(!authorize(&st, &boot, &res("list", "nodes", "", "")));
        assert!(!authorize(&st, &boot, &res("list", "secrets", "kube-system", "")));
    }

    #[test]
    fn tokens_parse() {
        assert_eq!(
            parse_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse_token("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse_token("abcdef0123456789abcdef"), None);
    }
}

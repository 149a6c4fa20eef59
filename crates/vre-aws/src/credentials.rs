//! The standard AWS credential and region chain, resolved offline:
//! environment variables first, then a profile of the shared files
//! (`~/.aws/credentials`, `~/.aws/config`, or the files `AWS_SHARED_CREDENTIALS_FILE`
//! and `AWS_CONFIG_FILE` name). Instance metadata and SSO need network calls
//! and are not consulted: `build` must not touch the network.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::AwsError;

/// Static credentials (an access key, with a session token when temporary).
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// Where they came from, for messages.
    pub source: CredentialSource,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source)
            .finish()
    }
}

impl AwsCredentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
        source: CredentialSource,
    ) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
            source,
        }
    }

    /// The form aws-sigv4 signs with.
    pub(crate) fn to_sdk(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "vre",
        )
    }

    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }
}

/// Where credentials were found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    Environment,
    Profile { name: String, file: PathBuf },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Environment => f.write_str("the environment (AWS_ACCESS_KEY_ID)"),
            CredentialSource::Profile { name, file } => write!(f, "profile \"{name}\" in {}", file.display()),
        }
    }
}

/// Region, endpoint and profile as the user configured them (the `[aws]` table).
#[derive(Clone, Debug, Default)]
pub struct ChainInput<'a> {
    pub profile: Option<&'a str>,
    pub region: Option<&'a str>,
    pub endpoint: Option<&'a str>,
}

/// What the chain resolved to.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub credentials: AwsCredentials,
    pub region: String,
    /// The EC2 endpoint (`https://ec2.<region>.amazonaws.com` unless overridden).
    pub endpoint: url::Url,
}

/// One INI file of the shared AWS configuration: section -> key -> value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileFile {
    pub path: PathBuf,
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl ProfileFile {
    /// Parses the AWS INI dialect: `[section]`, `key = value`, full-line `#`
    /// and `;` comments, and indented sub-properties (skipped: they belong
    /// to service-specific settings vre does not use).
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Self {
        let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for raw in text.lines() {
            let indented = raw.starts_with([' ', '\t']);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
                sections.entry(name.clone()).or_default();
                current = Some(name);
                continue;
            }
            if indented {
                continue;
            }
            let (Some(section), Some((k, v))) = (&current, line.split_once('=')) else {
                continue;
            };
            let value = strip_inline_comment(v.trim());
            sections
                .entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), value.to_string());
        }
        ProfileFile {
            path: path.into(),
            sections,
        }
    }

    fn section(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.sections.get(name)
    }
}

/// A `#` or `;` preceded by whitespace starts a comment.
fn strip_inline_comment(v: &str) -> &str {
    let bytes = v.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b'#' || bytes[i] == b';') && bytes[i - 1].is_ascii_whitespace() {
            return v[..i].trim_end();
        }
    }
    v
}

/// The two shared files, as found.
#[derive(Clone, Debug, Default)]
struct SharedFiles {
    credentials: Option<ProfileFile>,
    config: Option<ProfileFile>,
    credentials_path: Option<PathBuf>,
    config_path: Option<PathBuf>,
}

impl SharedFiles {
    fn load(env: &BTreeMap<String, String>) -> Result<SharedFiles, AwsError> {
        let home = var(env, "HOME").or_else(|| var(env, "USERPROFILE")).map(PathBuf::from);
        let credentials_path = var(env, "AWS_SHARED_CREDENTIALS_FILE")
            .map(expand_home(&home))
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join("credentials")));
        let config_path = var(env, "AWS_CONFIG_FILE")
            .map(expand_home(&home))
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join("config")));
        Ok(SharedFiles {
            credentials: read_optional(credentials_path.as_deref(), "AWS_SHARED_CREDENTIALS_FILE")?,
            config: read_optional(config_path.as_deref(), "AWS_CONFIG_FILE")?,
            credentials_path,
            config_path,
        })
    }

    fn describe(&self) -> String {
        let paths: Vec<String> = [&self.credentials_path, &self.config_path]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        if paths.is_empty() {
            "~/.aws/credentials (HOME is not set)".to_string()
        } else {
            paths.join(" and ")
        }
    }

    /// The profile's keys: the credentials file's `[name]` over the config
    /// file's `[profile name]` (`[default]` for the default profile).
    fn profile(&self, name: &str) -> Option<Vec<(&ProfileFile, &BTreeMap<String, String>)>> {
        let mut found = Vec::new();
        if let Some(f) = &self.credentials
            && let Some(s) = f.section(name)
        {
            found.push((f, s));
        }
        if let Some(f) = &self.config {
            let s = f.section(&format!("profile {name}")).or_else(|| {
                // the config file's default profile may be written either way
                (name == "default").then(|| f.section("default")).flatten()
            });
            if let Some(s) = s {
                found.push((f, s));
            }
        }
        (!found.is_empty()).then_some(found)
    }

    fn lookup<'s>(
        sections: &'s [(&ProfileFile, &BTreeMap<String, String>)],
        key: &str,
    ) -> Option<(&'s ProfileFile, &'s str)> {
        sections
            .iter()
            .find_map(|(f, s)| s.get(key).filter(|v| !v.is_empty()).map(|v| (*f, v.as_str())))
    }
}

fn var<'e>(env: &'e BTreeMap<String, String>, name: &str) -> Option<&'e str> {
    env.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn expand_home(home: &Option<PathBuf>) -> impl Fn(&str) -> PathBuf + '_ {
    move |p| match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(p),
    }
}

fn read_optional(path: Option<&Path>, var: &'static str) -> Result<Option<ProfileFile>, AwsError> {
    let Some(path) = path else { return Ok(None) };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(ProfileFile::parse(path, &text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AwsError::ProfileFile {
            path: path.to_path_buf(),
            var,
            source,
        }),
    }
}

/// Resolves credentials, region and endpoint. Order:
/// - credentials: a profile named in `[aws]`; else `AWS_ACCESS_KEY_ID` +
///   `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`); else the profile
///   `AWS_PROFILE` names (or `default`) from the shared files;
/// - region: `[aws] region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`;
/// - endpoint: `[aws] endpoint`, `AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`, the
///   profile's `endpoint_url` (the last three unless
///   `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), else the regional endpoint.
pub fn resolve(env: &BTreeMap<String, String>, input: &ChainInput<'_>) -> Result<Resolved, AwsError> {
    let files = SharedFiles::load(env)?;
    let (profile_name, profile_origin) = match input.profile {
        Some(p) => (p.to_string(), "`profile` in [aws]".to_string()),
        None => match var(env, "AWS_PROFILE").or_else(|| var(env, "AWS_DEFAULT_PROFILE")) {
            Some(p) => (p.to_string(), "AWS_PROFILE".to_string()),
            None => ("default".to_string(), "the default".to_string()),
        },
    };
    let explicit_profile = input.profile.is_some() || profile_origin == "AWS_PROFILE";
    let profile = files.profile(&profile_name);

    let from_env = || -> Result<Option<AwsCredentials>, AwsError> {
        match (var(env, "AWS_ACCESS_KEY_ID"), var(env, "AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Ok(Some(AwsCredentials::new(
                id,
                secret,
                var(env, "AWS_SESSION_TOKEN").map(str::to_string),
                CredentialSource::Environment,
            ))),
            (Some(_), None) => Err(AwsError::PartialEnvironment {
                set: "AWS_ACCESS_KEY_ID",
                missing: "AWS_SECRET_ACCESS_KEY",
            }),
            (None, Some(_)) => Err(AwsError::PartialEnvironment {
                set: "AWS_SECRET_ACCESS_KEY",
                missing: "AWS_ACCESS_KEY_ID",
            }),
            (None, None) => Ok(None),
        }
    };
    let from_profile = || -> Result<Option<AwsCredentials>, AwsError> {
        let Some(sections) = &profile else {
            if explicit_profile {
                return Err(AwsError::ProfileNotFound {
                    profile: profile_name.clone(),
                    origin: profile_origin.clone(),
                    files: files.describe(),
                });
            }
            return Ok(None);
        };
        let id = SharedFiles::lookup(sections, "aws_access_key_id");
        let secret = SharedFiles::lookup(sections, "aws_secret_access_key");
        match (id, secret) {
            (Some((file, id)), Some((_, secret))) => {
                let token = SharedFiles::lookup(sections, "aws_session_token").map(|(_, t)| t.to_string());
                Ok(Some(AwsCredentials::new(
                    id,
                    secret,
                    token,
                    CredentialSource::Profile {
                        name: profile_name.clone(),
                        file: file.path.clone(),
                    },
                )))
            }
            (Some((file, _)), None) => Err(AwsError::IncompleteProfile {
                profile: profile_name.clone(),
                path: file.path.clone(),
                present: "aws_access_key_id",
                missing: "aws_secret_access_key",
            }),
            (None, Some((file, _))) => Err(AwsError::IncompleteProfile {
                profile: profile_name.clone(),
                path: file.path.clone(),
                present: "aws_secret_access_key",
                missing: "aws_access_key_id",
            }),
            (None, None) => {
                let kind = [
                    ("role_arn", "role_arn (assume role)"),
                    ("credential_process", "credential_process"),
                    ("sso_session", "IAM Identity Center (sso_session)"),
                    ("sso_start_url", "IAM Identity Center (sso_start_url)"),
                    ("web_identity_token_file", "web_identity_token_file"),
                    ("login_session", "login_session (aws login)"),
                ]
                .into_iter()
                .find(|(k, _)| SharedFiles::lookup(sections, k).is_some())
                .map(|(_, d)| d.to_string());
                match kind {
                    Some(kind) => Err(AwsError::UnsupportedProfile {
                        profile: profile_name.clone(),
                        kind,
                    }),
                    None if explicit_profile => Err(AwsError::ProfileWithoutKeys {
                        profile: profile_name.clone(),
                        files: files.describe(),
                    }),
                    None => Ok(None),
                }
            }
        }
    };

    let credentials = if input.profile.is_some() {
        from_profile()?
    } else {
        match from_env()? {
            Some(c) => Some(c),
            None => from_profile()?,
        }
    };
    let credentials = credentials.ok_or_else(|| AwsError::NoCredentials {
        looked: files.describe(),
    })?;

    let profile_value = |key: &str| {
        profile
            .as_deref()
            .and_then(|s| SharedFiles::lookup(s, key))
            .map(|(_, v)| v)
    };
    let region = input
        .region
        .or_else(|| var(env, "AWS_REGION"))
        .or_else(|| var(env, "AWS_DEFAULT_REGION"))
        .or_else(|| profile_value("region"))
        .map(str::to_string)
        .ok_or_else(|| AwsError::NoRegion {
            config: files
                .config_path
                .as_ref()
                .map_or("~/.aws/config".to_string(), |p| p.display().to_string()),
        })?;

    let ignore_configured =
        var(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let configured = if ignore_configured {
        None
    } else {
        var(env, "AWS_ENDPOINT_URL_EC2")
            .map(|u| (u, "AWS_ENDPOINT_URL_EC2".to_string()))
            .or_else(|| var(env, "AWS_ENDPOINT_URL").map(|u| (u, "AWS_ENDPOINT_URL".to_string())))
            .or_else(|| {
                profile_value("endpoint_url").map(|u| (u, format!("endpoint_url of profile \"{profile_name}\"")))
            })
    };
    let endpoint = match input
        .endpoint
        .map(|u| (u, "endpoint in [aws]".to_string()))
        .or(configured)
    {
        Some((u, origin)) => parse_endpoint(u, &origin)?,
        None => regional_endpoint(&region)?,
    };
    Ok(Resolved {
        credentials,
        region,
        endpoint,
    })
}

/// Parses an endpoint override.
pub fn parse_endpoint(u: &str, origin: &str) -> Result<url::Url, AwsError> {
    let bad = || AwsError::BadEndpoint {
        origin: origin.to_string(),
        url: u.to_string(),
    };
    let url = url::Url::parse(u).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(url)
}

/// `https://ec2.<region>.amazonaws.com` (`.amazonaws.com.cn` in China).
pub fn regional_endpoint(region: &str) -> Result<url::Url, AwsError> {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let u = format!("https://ec2.{region}.{suffix}/");
    url::Url::parse(&u).map_err(|_| AwsError::BadEndpoint {
        origin: "the region".into(),
        url: u,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn home_with(credentials: &str, config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".aws")).unwrap();
        std::fs::write(d.path().join(".aws/credentials"), credentials).unwrap();
        std::fs::write(d.path().join(".aws/config"), config).unwrap();
        d
    }

    #[test]
    fn environment_credentials_come_first() {
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
            ("AWS_SESSION_TOKEN", "t0ken-value"),
            ("AWS_REGION", "eu-north-1"),
        ]);
        let r = resolve(&e, &ChainInput::default()).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKIDENV");
        assert!(r.credentials.has_session_token());
        assert_eq!(r.credentials.source, CredentialSource::Environment);
        assert_eq!(r.region, "eu-north-1");
        assert_eq!(r.endpoint.as_str(), "https://ec2.eu-north-1.amazonaws.com/");
        let shown = format!("{:?}", r.credentials);
        assert!(
            !shown.contains("s3cr3t-value") && !shown.contains("t0ken-value"),
            "{shown}"
        );
    }

    #[test]
    fn half_set_environment_names_the_missing_variable() {
        let e = env(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_REGION", "us-east-1")]);
        let err = resolve(&e, &ChainInput::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
            "{err}"
        );
    }

    #[test]
    fn profiles_come_from_the_shared_files() {
        let home = home_with(
            "# keys\n[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = s1\n\n[lab]\naws_access_key_id=AKIDLAB\naws_secret_access_key = s2 ; inline comment\naws_session_token = t\n",
            "[default]\nregion = us-west-2\n[profile lab]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 10\n",
        );
        let h = home.path().to_str().unwrap();
        let r = resolve(&env(&[("HOME", h)]), &ChainInput::default()).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKIDDEF");
        assert_eq!(r.region, "us-west-2");
        let r = resolve(&env(&[("HOME", h), ("AWS_PROFILE", "lab")]), &ChainInput::default()).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKIDLAB");
        assert_eq!(r.credentials.secret_access_key, "s2");
        assert!(r.credentials.has_session_token());
        assert_eq!(r.region, "eu-west-1");
        assert_eq!(
            r.credentials.source.to_string(),
            format!("profile \"lab\" in {h}/.aws/credentials")
        );
        // the spec's region wins over the profile's
        let input = ChainInput {
            profile: Some("lab"),
            region: Some("ap-south-1"),
            endpoint: None,
        };
        let r = resolve(
            &env(&[
                ("HOME", h),
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
            ]),
            &input,
        )
        .unwrap();
        assert_eq!(
            r.credentials.access_key_id, "AKIDLAB",
            "a profile named in [aws] beats the environment"
        );
        assert_eq!(r.region, "ap-south-1");
    }

    #[test]
    fn file_locations_follow_the_environment() {
        let d = tempfile::tempdir().unwrap();
        let creds = d.path().join("creds");
        let conf = d.path().join("conf");
        std::fs::write(&creds, "[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = s\n").unwrap();
        std::fs::write(
            &conf,
            "[profile ci]\nregion = ca-central-1\nendpoint_url = http://127.0.0.1:5000\n",
        )
        .unwrap();
        let e = env(&[
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", conf.to_str().unwrap()),
            ("AWS_PROFILE", "ci"),
        ]);
        let r = resolve(&e, &ChainInput::default()).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKIDCI");
        assert_eq!(r.region, "ca-central-1");
        assert_eq!(r.endpoint.as_str(), "http://127.0.0.1:5000/");
    }

    #[test]
    fn missing_and_unusable_profiles_are_explained() {
        let home = home_with("", "[profile sso]\nsso_session = corp\nregion = us-east-1\n");
        let h = home.path().to_str().unwrap();
        let err = resolve(&env(&[("HOME", h), ("AWS_PROFILE", "nope")]), &ChainInput::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("AWS profile \"nope\" (from AWS_PROFILE) is not in"),
            "{err}"
        );
        let err = resolve(&env(&[("HOME", h), ("AWS_PROFILE", "sso")]), &ChainInput::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("aws configure export-credentials --profile sso"),
            "{err}"
        );
        let err = resolve(&env(&[("HOME", h)]), &ChainInput::default()).unwrap_err();
        assert!(matches!(err, AwsError::NoCredentials { .. }), "{err}");
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    }

    #[test]
    fn region_is_required_and_endpoints_are_overridable() {
        let base = [("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S")];
        let err = resolve(&env(&base), &ChainInput::default()).unwrap_err();
        assert!(matches!(err, AwsError::NoRegion { .. }), "{err}");
        let mut e = env(&base);
        e.insert("AWS_DEFAULT_REGION".into(), "cn-north-1".into());
        assert_eq!(
            resolve(&e, &ChainInput::default()).unwrap().endpoint.as_str(),
            "https://ec2.cn-north-1.amazonaws.com.cn/"
        );
        e.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:4566".into());
        assert_eq!(
            resolve(&e, &ChainInput::default()).unwrap().endpoint.as_str(),
            "http://127.0.0.1:4566/"
        );
        e.insert("AWS_ENDPOINT_URL_EC2".into(), "http://127.0.0.1:5000".into());
        assert_eq!(
            resolve(&e, &ChainInput::default()).unwrap().endpoint.as_str(),
            "http://127.0.0.1:5000/"
        );
        let input = ChainInput {
            endpoint: Some("http://localhost:9"),
            ..ChainInput::default()
        };
        assert_eq!(resolve(&e, &input).unwrap().endpoint.as_str(), "http://localhost:9/");
        e.insert("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS".into(), "true".into());
        assert_eq!(
            resolve(&e, &ChainInput::default()).unwrap().endpoint.as_str(),
            "https://ec2.cn-north-1.amazonaws.com.cn/"
        );
        e.insert("AWS_ENDPOINT_URL_EC2".into(), "ftp://x".into());
        e.remove("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
        assert!(matches!(
            resolve(&e, &ChainInput::default()).unwrap_err(),
            AwsError::BadEndpoint { .. }
        ));
    }
}

//! vre-aws's errors, and how EC2's error codes become `vre_core::Error`s:
//! throttling and server faults are retried by the engine, quota and
//! capacity problems name the spec field the user can change, permission
//! and credential problems say which identity was used.

use std::path::PathBuf;
use std::time::Duration;

use vre_cloud_kit::answer;
use vre_core::{CloudError, Error, Role, SpecField};

/// The API name reported in every cloud error of this crate.
pub(crate) const SERVICE: &str = "ec2";

/// Where a failed call's input came from in the spec, so an EC2 error can
/// name the [`SpecField`] to change (vre-core spells its path).
#[derive(Clone, Debug, Default)]
pub struct Blame {
    /// The node group the call worked for.
    pub role: Option<Role>,
    /// The field holding the image: [`SpecField::Image`], or `aws.image_id` /
    /// [`SpecField::ImageSource`] when the AMI came from there.
    pub image_field: Option<SpecField>,
}

impl Blame {
    /// Blames the node group `role`.
    pub fn role(role: Role) -> Self {
        Blame {
            role: Some(role),
            ..Blame::default()
        }
    }

    /// Blames the image `field`.
    pub fn image(field: SpecField) -> Self {
        Blame {
            image_field: Some(field),
            ..Blame::default()
        }
    }

    /// The group's field `field` makes of its role, or the node groups as a
    /// whole when the call worked for none.
    fn group_field(&self, field: fn(Role) -> SpecField) -> SpecField {
        self.role.map_or(SpecField::Nodes, field)
    }
}

/// A key of the `[aws]` table as a spec field (`aws.vpc_id`).
pub(crate) fn setting(key: &str) -> SpecField {
    SpecField::setting(crate::PROVIDER, key)
}

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS credentials found: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set AWS_PROFILE (or `profile` in [aws]) to a profile in {looked}"
    )]
    NoCredentials { looked: String },

    #[error("{set} is set but {missing} is not; export both (or neither, to use a profile from ~/.aws/credentials)")]
    PartialEnvironment { set: &'static str, missing: &'static str },

    #[error(
        "AWS profile \"{profile}\" (from {origin}) is not in {files}; run `aws configure --profile {profile}` or choose another profile"
    )]
    ProfileNotFound {
        profile: String,
        origin: String,
        files: String,
    },

    #[error(
        "AWS profile \"{profile}\" has no aws_access_key_id / aws_secret_access_key but uses {kind}, which vre cannot resolve offline; export temporary keys with `eval \"$(aws configure export-credentials --profile {profile} --format env)\"`"
    )]
    UnsupportedProfile { profile: String, kind: String },

    #[error(
        "AWS profile \"{profile}\" (in {files}) has no aws_access_key_id and aws_secret_access_key; add them with `aws configure --profile {profile}`"
    )]
    ProfileWithoutKeys { profile: String, files: String },

    #[error("AWS profile \"{profile}\" in {path} sets {present} but not {missing}; add {missing} to its section")]
    IncompleteProfile {
        profile: String,
        path: PathBuf,
        present: &'static str,
        missing: &'static str,
    },

    #[error("cannot read {}: {source}; fix its permissions or point {var} elsewhere", path.display())]
    ProfileFile {
        path: PathBuf,
        var: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no AWS region: set `region` in [aws], export AWS_REGION, or add `region = ...` to the profile's section of {config}"
    )]
    NoRegion { config: String },

    #[error("{origin} = \"{url}\" is not an http(s) URL; write it as https://host[:port]")]
    BadEndpoint { origin: String, url: String },

    /// EC2 refused the credentials (unknown key, bad signature, expired token).
    #[error(
        "AWS rejected the credentials from {source_desc} ({code}: {message}); check them, or refresh an expired session token"
    )]
    Rejected {
        action: String,
        code: String,
        message: String,
        source_desc: String,
    },

    /// The identity may not call this action.
    #[error(
        "the AWS identity from {source_desc} may not call ec2:{action}; grant it in IAM (decode the details with `aws sts decode-authorization-message`): {message}"
    )]
    Unauthorized {
        action: String,
        message: String,
        source_desc: String,
    },

    /// An EC2 error document (`<Response><Errors><Error>`).
    #[error("{action}: {code}: {message}")]
    Api {
        action: String,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },

    #[error("{action}: request failed: {source}")]
    Transport {
        action: String,
        #[source]
        source: reqwest::Error,
    },

    /// An HTTP error without an EC2 error document (a proxy's page, moto's 500).
    #[error("{action}: HTTP {status}: {snippet}")]
    Http {
        action: String,
        status: u16,
        snippet: String,
    },

    #[error("{action}: unreadable answer ({reason}): {snippet}")]
    Decode {
        action: String,
        reason: String,
        snippet: String,
    },

    #[error("signing {action}: {reason}")]
    Signing { action: String, reason: String },
}

/// Codes EC2 uses for throttling and transient server faults.
const RETRIABLE_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "EC2ThrottledException",
    "InternalError",
    "InternalFailure",
    "ServerInternal",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Codes meaning the credentials themselves are wrong.
const CREDENTIAL_CODES: &[&str] = &[
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "UnrecognizedClientException",
    "ExpiredToken",
    "RequestExpired",
    "InvalidAccessKeyId",
    "InvalidToken",
];

impl AwsError {
    /// The EC2 error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } | AwsError::Rejected { code, .. } => Some(code),
            AwsError::Unauthorized { .. } => Some("UnauthorizedOperation"),
            _ => None,
        }
    }

    /// `Invalid*.NotFound`, `InvalidInstanceID.NotFound`, ...: the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code()
            .is_some_and(|c| c.ends_with(".NotFound") || c.ends_with("NotFound"))
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code() == Some(code)
    }

    pub(crate) fn is_credential_code(code: &str) -> bool {
        CREDENTIAL_CODES.contains(&code)
    }

    /// Whether the engine may retry the call.
    pub fn is_retriable(&self) -> bool {
        match self {
            AwsError::Api { code, status, .. } => RETRIABLE_CODES.contains(&code.as_str()) || *status >= 500,
            AwsError::Transport { .. } => true,
            AwsError::Http { status, .. } => matches!(status, 408 | 425 | 429) || *status >= 500,
            _ => false,
        }
    }

    /// Into the engine's error, naming the spec field `blame` points at when
    /// EC2's code says the user can fix it there.
    pub fn blame(self, blame: &Blame) -> Error {
        let (action, status, code, message, request_id) = match self {
            AwsError::Api {
                action,
                status,
                code,
                message,
                request_id,
            } => (action, status, code, message, request_id),
            AwsError::Rejected { .. } | AwsError::Unauthorized { .. } => {
                return Error::Credentials {
                    message: self.to_string(),
                };
            }
            AwsError::Transport { action, source } => return CloudError::transport(SERVICE, action, source).into(),
            AwsError::Http {
                action,
                status,
                snippet,
            } => {
                return answer::http(SERVICE, action, status, None, snippet, None).into();
            }
            AwsError::Decode { ref action, .. } | AwsError::Signing { ref action, .. } => {
                return answer::failed(SERVICE, action.clone(), None, None, self.to_string(), false).into();
            }
            other => {
                return Error::Credentials {
                    message: other.to_string(),
                };
            }
        };
        let flavor = blame.group_field(SpecField::Flavor);
        let detail = |hint: &str| format!("{message} ({code}); {hint}");
        let input = |field: SpecField, hint: &str| Error::rejected(field, detail(hint));
        match code.as_str() {
            "InstanceLimitExceeded"
            | "VcpuLimitExceeded"
            | "MaxSpotInstanceCountExceeded"
            | "InsufficientFreeAddressesInSubnet" => {
                let hint = if code == "InsufficientFreeAddressesInSubnet" {
                    "the subnet is full; lower the count or use a larger network.cidr / another [aws] subnet_id"
                } else {
                    "lower the count, or ask AWS for a higher quota (Service Quotas: \"Running On-Demand Standard instances\")"
                };
                return input(blame.group_field(SpecField::Count), hint);
            }
            "InsufficientInstanceCapacity" | "Unsupported" | "InsufficientCapacity" => {
                return input(
                    flavor,
                    "AWS cannot place this instance type here now; choose another type or set [aws] availability_zone to another zone",
                );
            }
            "InvalidInstanceType" => {
                return input(
                    flavor,
                    "write an instance type this region offers, such as \"t3.medium\"",
                );
            }
            "InvalidParameterValue" if message.contains("nstance type") || message.contains("InstanceType") => {
                return input(
                    flavor,
                    "write an instance type this region offers, such as \"t3.medium\"",
                );
            }
            "AddressLimitExceeded" => {
                return input(
                    blame.group_field(SpecField::PublicIp),
                    "the Elastic IP quota (5 per region by default) is used up; release unused addresses, ask AWS for more, or set public_ip = false",
                );
            }
            "VpcLimitExceeded" | "InternetGatewayLimitExceeded" => {
                return input(
                    setting("vpc_id"),
                    "the VPC quota is used up; delete an unused VPC or reuse one with [aws] vpc_id",
                );
            }
            "VolumeLimitExceeded" | "MaxIOPSLimitExceeded" => {
                return input(
                    SpecField::Volume(Role::Storage),
                    "the EBS storage quota is used up; lower the size or count, or ask AWS for more",
                );
            }
            "SecurityGroupLimitExceeded" | "RulesPerSecurityGroupLimitExceeded" => {
                // no SpecField names the ingress ports: the plain input error carries the path
                return Error::input(
                    "network.ingress_ports",
                    detail("write fewer ports or port ranges, or delete unused security groups"),
                );
            }
            "OptInRequired" | "PendingVerification" | "Blocked" => {
                return Error::Credentials {
                    message: format!(
                        "{action}: {message} ({code}); the AWS account cannot use EC2 here yet: finish its sign-up or enable the region"
                    ),
                };
            }
            c if c.starts_with("InvalidAMIID.") || (c == "InvalidParameterValue" && message.contains("AMI")) => {
                let field = blame.image_field.clone().unwrap_or(SpecField::Image);
                return input(field, "name an AMI that exists in this region and is available");
            }
            c if c.starts_with("InvalidKeyPair.") || c == "InvalidKey.Format" => {
                return Error::input(
                    "ssh.public_key",
                    detail("EC2 accepts OpenSSH RSA and ED25519 public keys; point ssh.public_key at such a .pub file"),
                );
            }
            _ => {}
        }
        let message = match request_id {
            Some(id) => format!("{message} (request id {id})"),
            None => message,
        };
        let message = format!("{code}: {message}");
        if code == "RequestLimitExceeded" {
            // EC2 sends no Retry-After; throttling deserves a pause of its own
            answer::throttled(SERVICE, action, status, code, message, Some(Duration::from_secs(1))).into()
        } else {
            let transient = RETRIABLE_CODES.contains(&code.as_str()) || status >= 500;
            answer::failed(SERVICE, action, Some(status), Some(code), message, transient).into()
        }
    }
}

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        e.blame(&Blame::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(action: &str, status: u16, code: &str, message: &str) -> AwsError {
        AwsError::Api {
            action: action.into(),
            status,
            code: code.into(),
            message: message.into(),
            request_id: Some("r-1".into()),
        }
    }

    #[test]
    fn throttling_and_server_faults_are_retriable() {
        for (status, code) in [
            (503, "RequestLimitExceeded"),
            (400, "Throttling"),
            (500, "InternalError"),
            (503, "Unavailable"),
        ] {
            let e: Error = api("RunInstances", status, code, "slow down").into();
            assert!(e.retry().is_some(), "{code}");
        }
        let e: Error = api("RunInstances", 503, "RequestLimitExceeded", "Request limit exceeded.").into();
        assert_eq!(e.retry(), Some(Some(Duration::from_secs(1))));
        let e: Error = api("CreateVpc", 400, "InvalidParameterValue", "bad cidr").into();
        assert!(e.retry().is_none());
        assert_eq!(
            e.to_string(),
            "ec2 CreateVpc: HTTP 400: InvalidParameterValue: bad cidr (request id r-1)"
        );
    }

    #[test]
    fn quota_and_capacity_errors_name_the_spec_field() {
        let e = api(
            "RunInstances",
            400,
            "InstanceLimitExceeded",
            "Your quota allows for 0 more running instance(s).",
        )
        .blame(&Blame::role(Role::Service));
        match &e {
            Error::Rejected { field, message } => {
                assert_eq!(field, &SpecField::Count(Role::Service));
                assert!(message.contains("Service Quotas"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(e.exit_code(), 2);
        let e = api("RunInstances", 500, "InsufficientInstanceCapacity", "no capacity").blame(&Blame::role(Role::Edge));
        assert!(
            matches!(
                &e,
                Error::Rejected {
                    field: SpecField::Flavor(Role::Edge),
                    ..
                }
            ),
            "{e}"
        );
        let e = api(
            "RunInstances",
            400,
            "InvalidAMIID.NotFound",
            "The image id '[ami-1]' does not exist",
        )
        .blame(&Blame::image(setting("image_id")));
        assert!(
            matches!(&e, Error::Rejected { field, .. } if *field == setting("image_id")),
            "{e}"
        );
        let e = api(
            "ImportKeyPair",
            400,
            "InvalidKeyPair.Format",
            "Key is not in valid OpenSSH public key format",
        )
        .into();
        assert!(
            matches!(&e, Error::Input { field, .. } if field == "ssh.public_key"),
            "{e}"
        );
        let e = api(
            "AllocateAddress",
            400,
            "AddressLimitExceeded",
            "The maximum number of addresses has been reached.",
        )
        .blame(&Blame::role(Role::Master));
        assert!(
            matches!(
                &e,
                Error::Rejected {
                    field: SpecField::PublicIp(Role::Master),
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn not_found_codes_are_recognised() {
        assert!(api("DeleteVpc", 400, "InvalidVpcID.NotFound", "x").is_not_found());
        assert!(api("ReleaseAddress", 400, "InvalidAllocationID.NotFound", "x").is_not_found());
        assert!(!api("DeleteVpc", 400, "DependencyViolation", "x").is_not_found());
    }

    #[test]
    fn permission_problems_are_credential_errors_naming_the_identity() {
        let e: Error = AwsError::Unauthorized {
            action: "RunInstances".into(),
            message: "You are not authorized to perform this operation.".into(),
            source_desc: "profile \"lab\" in /home/u/.aws/credentials".into(),
        }
        .into();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("may not call ec2:RunInstances"), "{e}");
        assert!(e.to_string().contains("profile \"lab\""), "{e}");
    }
}

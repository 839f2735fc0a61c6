//! AWS configuration the AWS way, configuration errors in words a user can act on, and the account guard.
//!
//! Credentials and Region come from `aws-config`'s default chain (environment, profile, SSO, web identity, ECS
//! task role, instance metadata); endpoints from the SDK's standard `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` variables, and from `--endpoint-url` for ECS alone, as the AWS CLI applies it to the
//! one service it calls. This is the only module that imports `aws-sdk-sts`.
//!
//! A configuration error (no Region, no credentials, a malformed endpoint) is a [`ConfigError`]: nothing works until
//! the user sets something, so commands stop at once with one line that says what to set. [`load`] finds what it can
//! before the first request; [`config_problem`] recognises the rest in a failed request's error chain (the SDK
//! reports them as dispatch or construction failures, which would otherwise read as an outage).
//!
//! [`call`] classifies any failed AWS call once (service error, configuration, no answer), for every client.

pub mod call;

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_smithy_runtime_api::client::endpoint::error::ResolveEndpointError;
use aws_smithy_runtime_api::client::result::SdkError;

/// The SDK's endpoint variables for the services this program calls
/// (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>).
pub const ENDPOINT_VARIABLES: [&str; 6] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ECS",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_CLOUDWATCH",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
];

/// A configuration the SDK cannot work with; each message names what to set, on one short line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no AWS Region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)")]
    NoRegion,
    #[error("AWS Region {0:?} is not a Region code: set AWS_REGION to one such as eu-west-1")]
    BadRegion(String),
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or give it an IAM role"
    )]
    NoCredentials,
    #[error("the AWS credentials settings are invalid: {0}")]
    BadCredentials(String),
    #[error("{setting} {value:?} is not an endpoint URL: write http://host:port or https://host")]
    BadEndpoint { setting: String, value: String },
    #[error(
        "the endpoint cannot be used ({0}): check --endpoint-url, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>"
    )]
    Endpoint(String),
    #[error("an AWS request could not be built ({0}): check AWS_REGION and the endpoint settings")]
    Request(String),
}

impl ConfigError {
    /// The stable label of every configuration error, for logs and metrics.
    pub fn label(&self) -> &'static str {
        "config"
    }
}

/// Loads the default configuration chain and checks what can be checked before the first request: the endpoint
/// variables, the Region, and that the credential chain finds credentials at all.
pub async fn load() -> Result<aws_config::SdkConfig, ConfigError> {
    for name in ENDPOINT_VARIABLES {
        if let Some(value) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
            check_endpoint(name, &value)?;
        }
    }
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    check_region(conf.region().map(|r| r.as_ref()))?;
    check_credentials(&conf).await?;
    Ok(conf)
}

/// A Region must be set, and be a Region code (it becomes a host name label in every endpoint).
pub fn check_region(region: Option<&str>) -> Result<(), ConfigError> {
    let Some(region) = region else {
        return Err(ConfigError::NoRegion);
    };
    let label = !region.is_empty()
        && region.len() <= 63
        && region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if label {
        Ok(())
    } else {
        Err(ConfigError::BadRegion(region.to_owned()))
    }
}

/// An endpoint setting must be an absolute `http` or `https` URL with a host.
pub fn check_endpoint(setting: &str, value: &str) -> Result<(), ConfigError> {
    let ok = value.parse::<axum::http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some_and(|h| !h.is_empty())
    });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadEndpoint {
            setting: setting.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// Asks the credential chain once. Only an answer that says the configuration is missing or wrong is an error here;
/// a provider that times out or fails for a while (instance metadata, STS) is left to the requests, which report
/// and retry it as an outage.
async fn check_credentials(conf: &aws_config::SdkConfig) -> Result<(), ConfigError> {
    let Some(provider) = conf.credentials_provider() else {
        return Err(ConfigError::NoCredentials);
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(e) => credentials_problem(&e).map_or(Ok(()), Err),
    }
}

/// The configuration errors among the credential chain's errors.
fn credentials_problem(e: &CredentialsError) -> Option<ConfigError> {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => Some(ConfigError::NoCredentials),
        CredentialsError::InvalidConfiguration(_) => Some(ConfigError::BadCredentials(describe(e))),
        _ => None,
    }
}

/// The configuration error behind a failed request, if that is what it is: missing or invalid credentials, no
/// Region, an endpoint that cannot be applied, or a request that could not be built. `None` for everything else
/// (service errors, timeouts, connection failures), which the caller reports as it always has.
pub fn config_problem<E, R>(err: &SdkError<E, R>) -> Option<ConfigError>
where
    E: StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    if matches!(
        err,
        SdkError::ServiceError(_) | SdkError::ResponseError(_) | SdkError::TimeoutError(_)
    ) {
        return None;
    }
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return credentials_problem(c);
        }
        if let Some(r) = e.downcast_ref::<ResolveEndpointError>() {
            // The endpoint rules say "Invalid Configuration: Missing Region" when no Region is set.
            return Some(if r.to_string().contains("Missing Region") {
                ConfigError::NoRegion
            } else {
                ConfigError::Endpoint(describe(r))
            });
        }
        // Signing without a Region (an endpoint URL was given, so the endpoint rules did not need one).
        if e.to_string() == "missing signing region" {
            return Some(ConfigError::NoRegion);
        }
        next = e.source();
    }
    match err {
        SdkError::ConstructionFailure(_) => Some(ConfigError::Request(describe(err))),
        _ => None,
    }
}

/// An error and its causes on one line (`a: b: c`), without the SDK's debug dumps: each cause once, a request
/// printed inside an endpoint error left out, at most 300 characters. A [`call::CallError`] already names its causes:
/// the walk stops there.
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    const MAX: usize = 300;
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // "failed to apply endpoint `x` to request `Request { body: …, headers: … }`": the request is noise.
        let text = text
            .split(" to request `")
            .next()
            .unwrap_or_default()
            .replace('\n', " ");
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        if e.is::<call::CallError>() {
            break;
        }
        next = e.source();
    }
    let line = parts.join(": ");
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Why the account guard refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error(
        "the credentials belong to account {actual} ({arn}), not the expected {expected}: nothing will be changed \
         (check AWS_PROFILE / the role, or --expect-account / AWS_ACCOUNT_ID)"
    )]
    Mismatch {
        expected: String,
        actual: String,
        arn: String,
    },
    #[error("cannot confirm the account (STS GetCallerIdentity: {0}): nothing will be changed")]
    Unconfirmed(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The account the credentials belong to, and the caller's ARN (`sts:GetCallerIdentity`, which needs no
/// permission).
pub async fn caller(conf: &aws_config::SdkConfig) -> Result<(String, String), AccountError> {
    let out = aws_sdk_sts::Client::new(conf)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            let call = call::classify("GetCallerIdentity", e);
            match call.config() {
                Some(config) => AccountError::Config(config.clone()),
                None => AccountError::Unconfirmed(call.reason().to_owned()),
            }
        })?;
    let account = out
        .account()
        .ok_or_else(|| AccountError::Unconfirmed("the answer names no account".into()))?;
    Ok((account.to_owned(), out.arn().unwrap_or("?").to_owned()))
}

/// With an expected account, the credentials must belong to it before anything is mutated; without one, the guard
/// is off and STS is not called.
pub async fn guard(conf: &aws_config::SdkConfig, expected: Option<&str>) -> Result<(), AccountError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let (actual, arn) = caller(conf).await?;
    if actual == expected {
        Ok(())
    } else {
        Err(AccountError::Mismatch {
            expected: expected.to_owned(),
            actual,
            arn,
        })
    }
}

/// A configuration for a local endpoint (`twin serve`, `moto_server`): static dummy credentials, a fixed Region and
/// every service's endpoint at `endpoint`, so nothing reads the environment or the instance metadata service.
pub fn local(endpoint: &str) -> aws_config::SdkConfig {
    use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "static",
        )))
        .endpoint_url(endpoint)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    /// A service error type for [`SdkError`]'s type parameter; these tests never build a service error.
    #[derive(Debug)]
    struct NoServiceError;

    impl std::fmt::Display for NoServiceError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("service error")
        }
    }

    impl StdError for NoServiceError {}

    type Failed = SdkError<NoServiceError, ()>;

    /// How the SDK reports a failure met before sending (credentials, endpoint, signing): a dispatch failure whose
    /// connector error wraps the cause.
    fn dispatch(cause: impl StdError + Send + Sync + 'static) -> Failed {
        SdkError::dispatch_failure(ConnectorError::other(Box::new(cause), None))
    }

    #[test]
    fn a_region_must_be_set_and_be_a_region_code() {
        assert_eq!(check_region(None), Err(ConfigError::NoRegion));
        assert_eq!(check_region(Some("eu-west-1")), Ok(()));
        assert_eq!(check_region(Some("us-gov-west-1")), Ok(()));
        for bad in ["", "eu west 1", "-eu", "eu-west-1/", "é"] {
            assert_eq!(
                check_region(Some(bad)),
                Err(ConfigError::BadRegion(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_endpoint_must_be_an_http_or_https_url_with_a_host() {
        for good in [
            "http://127.0.0.1:4566",
            "https://ecs.eu-west-1.amazonaws.com",
            "http://localhost:8000/",
        ] {
            assert_eq!(check_endpoint("AWS_ENDPOINT_URL", good), Ok(()), "{good}");
        }
        for bad in ["not a url", "localhost:4566", "ftp://example.com", "http://", "/path"] {
            assert_eq!(
                check_endpoint("AWS_ENDPOINT_URL_ECS", bad),
                Err(ConfigError::BadEndpoint {
                    setting: "AWS_ENDPOINT_URL_ECS".into(),
                    value: bad.into()
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_credentials_are_a_configuration_error_that_says_what_to_set() {
        let e = dispatch(CredentialsError::not_loaded("no provider in the chain had any"));
        assert_eq!(config_problem(&e), Some(ConfigError::NoCredentials));
        let line = ConfigError::NoCredentials.to_string();
        assert!(
            line.contains("AWS_ACCESS_KEY_ID") && line.contains("AWS_PROFILE"),
            "{line}"
        );
        let e = dispatch(CredentialsError::invalid_configuration("profile loops"));
        assert!(matches!(config_problem(&e), Some(ConfigError::BadCredentials(m)) if m.contains("profile loops")));
    }

    #[test]
    fn a_credential_provider_that_fails_for_a_while_is_not_a_configuration_error() {
        let e = dispatch(CredentialsError::provider_timed_out(std::time::Duration::from_secs(5)));
        assert_eq!(config_problem(&e), None);
        let e = dispatch(CredentialsError::provider_error("STS answered 503"));
        assert_eq!(config_problem(&e), None);
    }

    #[test]
    fn no_region_is_recognised_from_the_endpoint_rules_and_from_signing() {
        let e = dispatch(ResolveEndpointError::message("Invalid Configuration: Missing Region"));
        assert_eq!(config_problem(&e), Some(ConfigError::NoRegion));

        #[derive(Debug)]
        struct Signing;
        impl std::fmt::Display for Signing {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("missing signing region")
            }
        }
        impl StdError for Signing {}
        assert_eq!(config_problem(&dispatch(Signing)), Some(ConfigError::NoRegion));
        let line = ConfigError::NoRegion.to_string();
        assert!(line.contains("AWS_REGION") && line.len() <= 100, "{line}");
    }

    #[test]
    fn an_endpoint_that_cannot_be_applied_is_named_without_the_request_dump() {
        let e = dispatch(ResolveEndpointError::message(
            "failed to apply endpoint `not a url` to request `Request { body: SdkBody { inner: Once(…) } }`",
        ));
        assert_eq!(
            config_problem(&e),
            Some(ConfigError::Endpoint("failed to apply endpoint `not a url`".into()))
        );
    }

    #[test]
    fn a_request_that_could_not_be_built_is_a_configuration_error() {
        let e: Failed = SdkError::construction_failure("endpoint params could not be built: region is invalid");
        assert!(matches!(config_problem(&e), Some(ConfigError::Request(m)) if m.contains("region is invalid")));
    }

    #[test]
    fn outages_are_not_configuration_errors() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e: Failed = SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        assert_eq!(config_problem(&e), None);
        let e: Failed = SdkError::timeout_error("operation timed out");
        assert_eq!(config_problem(&e), None);
        let e: Failed = SdkError::service_error(NoServiceError, ());
        assert_eq!(config_problem(&e), None);
    }

    #[test]
    fn describe_prints_the_causes_on_one_line_without_debug_dumps() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e: Failed = SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        let line = describe(&e);
        assert_eq!(line, "dispatch failure: io error: connection refused");
        let long: Failed = SdkError::construction_failure("x".repeat(1_000) + "\nsecond line");
        let line = describe(&long);
        assert!(!line.contains('\n') && line.chars().count() <= 301, "{line}");
    }
}

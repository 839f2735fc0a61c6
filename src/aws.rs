//! AWS configuration the AWS way, and the account guard.
//!
//! Credentials and Region come from `aws-config`'s default chain (environment, profile, SSO, web identity, ECS
//! task role, instance metadata); endpoints from the SDK's standard `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` variables, and from `--endpoint-url` for ECS alone, as the AWS CLI applies it to the
//! one service it calls. This is the only file that imports `aws-sdk-sts`.

use aws_sdk_sts::error::ProvideErrorMetadata;

/// Loads the default configuration chain.
pub async fn load() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
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
}

/// The account the credentials belong to, and the caller's ARN (`sts:GetCallerIdentity`, which needs no
/// permission).
pub async fn caller(conf: &aws_config::SdkConfig) -> Result<(String, String), AccountError> {
    let out = aws_sdk_sts::Client::new(conf)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            let detail = match e.as_service_error() {
                Some(s) => format!("{}: {}", s.code().unwrap_or("error"), s.message().unwrap_or("")),
                None => format!("{e:?}"),
            };
            AccountError::Unconfirmed(detail)
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

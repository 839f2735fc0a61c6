//! A failed AWS call, classified once for every service the program calls (ECS, CloudWatch, STS, DynamoDB): what
//! the service answered (its error code and message, and the HTTP status), a configuration the SDK cannot work with
//! ([`ConfigError`]), or no answer that says what happened. [`classify`] makes a [`CallError`] of the SDK's error,
//! keeping that error as its source; each caller then maps the [`Failure`] to its own error type in its own terms
//! (`EcsError` by ECS's error codes, the ledger by DynamoDB's), and keeps the [`CallError`] in a [`Detail`].
//!
//! ```text
//! match crate::aws::call::classify("Query", e) {
//!     call if call.code() == Some("ResourceNotFoundException") => LedgerError::Table(call.into()),
//!     call => match call.failure() {
//!         Failure::Config(c) => LedgerError::Config(c.clone()),
//!         _ => LedgerError::Unavailable(call.into()),
//!     },
//! }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{config_problem, describe, ConfigError};

/// How an AWS call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The service answered with an error: its code (`ThrottlingException`, `ResourceNotFoundException`, …; empty
    /// when the answer named none), its message, and the HTTP status (5xx: the service failed, not the request).
    Service { code: String, message: String, status: u16 },
    /// The configuration is missing or wrong (Region, credentials, endpoint): nothing works until it is set.
    Config(ConfigError),
    /// No answer that says what happened: a timeout, a connection that failed or dropped, a response that could not
    /// be read. A mutation sent this way may or may not have been applied.
    NoAnswer,
}

/// A failed AWS call: the operation, how it failed, and the SDK's error as the source.
///
/// It prints as one line, `Operation: Code: message` or `Operation: cause: cause…` (the SDK's causes, once each,
/// without its debug dumps; see [`describe`]), which is also what [`Detail`] holds as its text. Because the line
/// already names the causes, a printer that walks `source()` should use [`describe`], which stops here.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {reason}")]
pub struct CallError {
    operation: &'static str,
    reason: String,
    failure: Failure,
    #[source]
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl CallError {
    /// The operation called (`StopTask`, `GetMetricData`, `Query`, …).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The line without the operation: `Code: message`, or the causes.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// The service's error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match &self.failure {
            Failure::Service { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    /// The service answered, with a 5xx: it failed, whatever it was asked.
    pub fn is_server_error(&self) -> bool {
        matches!(self.failure, Failure::Service { status: 500..=599, .. })
    }

    /// The configuration problem behind the failure, if that is what it is.
    pub fn config(&self) -> Option<&ConfigError> {
        match &self.failure {
            Failure::Config(c) => Some(c),
            _ => None,
        }
    }
}

/// Classifies the SDK's error of one call of `operation`, for any AWS service's client.
pub fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let (failure, reason) = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default().to_owned();
            let message = service.err().message().unwrap_or_default().to_owned();
            let status = service.raw().status().as_u16();
            let reason = match code.as_str() {
                "" => format!("HTTP {status}: {message}"),
                code => format!("{code}: {message}"),
            };
            (Failure::Service { code, message, status }, reason)
        }
        _ => match config_problem(&err) {
            Some(config) => {
                let reason = config.to_string();
                (Failure::Config(config), reason)
            }
            None => (Failure::NoAnswer, describe(&err)),
        },
    };
    CallError {
        operation,
        reason,
        failure,
        source: Box::new(err),
    }
}

/// The text of an error, and the failed AWS call behind it when there is one: what the variants of `EcsError` hold
/// (and can hold for any error type that classifies AWS calls), so that the SDK's error is kept rather than flattened
/// into the text. It compares, prints and dereferences as its text, so it reads like the `String` it replaces.
///
/// It is deliberately not the `source()` of the error that holds it: the text already names the causes, and a chain
/// printer (`anyhow`'s `{:#}`) would print them twice. [`Detail::call`] reaches the call instead.
#[derive(Debug, Clone)]
pub struct Detail {
    text: String,
    /// Boxed (shared), so that an error holding a `Detail` stays small.
    call: Option<Arc<CallError>>,
}

impl Detail {
    pub fn new(text: impl Into<String>) -> Detail {
        Detail {
            text: text.into(),
            call: None,
        }
    }

    /// The failed call behind this error, if there was one.
    pub fn call(&self) -> Option<&CallError> {
        self.call.as_deref()
    }

    /// Other words for the same failure: the call, if any, is kept.
    pub fn reworded(self, text: impl Into<String>) -> Detail {
        Detail {
            text: text.into(),
            call: self.call,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<CallError> for Detail {
    fn from(call: CallError) -> Detail {
        Detail {
            text: call.to_string(),
            call: Some(Arc::new(call)),
        }
    }
}

impl From<String> for Detail {
    fn from(text: String) -> Detail {
        Detail::new(text)
    }
}

impl From<&str> for Detail {
    fn from(text: &str) -> Detail {
        Detail::new(text)
    }
}

impl From<Detail> for String {
    fn from(d: Detail) -> String {
        d.text
    }
}

impl std::ops::Deref for Detail {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Equal when the texts are: the call is how it came about, not what it says.
impl PartialEq for Detail {
    fn eq(&self, other: &Detail) -> bool {
        self.text == other.text
    }
}

impl Eq for Detail {}

impl PartialEq<str> for Detail {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Detail {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    /// An operation's error as the SDK models one it has no variant for: code and message from the answer.
    #[derive(Debug)]
    struct Unhandled(ErrorMetadata);

    impl fmt::Display for Unhandled {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "unhandled error ({})", self.0.code().unwrap_or("?"))
        }
    }

    impl StdError for Unhandled {}

    impl ProvideErrorMetadata for Unhandled {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    fn answered(status: u16, code: Option<&str>, message: &str) -> SdkError<Unhandled, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message(message);
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from("{}"));
        SdkError::service_error(Unhandled(meta.build()), raw)
    }

    #[test]
    fn a_service_error_keeps_its_code_message_and_status_and_prints_on_one_line() {
        let call = classify(
            "StopTask",
            answered(400, Some("ClusterNotFoundException"), "Cluster not found."),
        );
        assert_eq!(
            call.to_string(),
            "StopTask: ClusterNotFoundException: Cluster not found."
        );
        assert_eq!(call.operation(), "StopTask");
        assert_eq!(call.reason(), "ClusterNotFoundException: Cluster not found.");
        assert_eq!(call.code(), Some("ClusterNotFoundException"));
        assert!(!call.is_server_error());
        assert_eq!(
            call.failure(),
            &Failure::Service {
                code: "ClusterNotFoundException".into(),
                message: "Cluster not found.".into(),
                status: 400
            }
        );
        // The SDK's error is the source, not flattened away.
        let source = call.source().expect("the SDK's error");
        assert!(source.downcast_ref::<SdkError<Unhandled, HttpResponse>>().is_some());

        let call = classify("UpdateService", answered(503, None, "try later"));
        assert_eq!(call.to_string(), "UpdateService: HTTP 503: try later");
        assert_eq!(call.code(), None);
        assert!(call.is_server_error());
    }

    #[test]
    fn no_answer_is_described_once_without_debug_dumps() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e: SdkError<Unhandled, HttpResponse> = SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        let call = classify("ListTasks", e);
        assert_eq!(call.failure(), &Failure::NoAnswer);
        assert_eq!(
            call.to_string(),
            "ListTasks: dispatch failure: io error: connection refused"
        );
        assert_eq!(describe(&call), call.to_string(), "describe stops at the line");
        let e: SdkError<Unhandled, HttpResponse> = SdkError::timeout_error("operation timed out");
        assert_eq!(classify("StopTask", e).failure(), &Failure::NoAnswer);
    }

    #[test]
    fn a_configuration_problem_is_recognised_in_the_chain() {
        let e: SdkError<Unhandled, HttpResponse> = SdkError::dispatch_failure(ConnectorError::other(
            Box::new(CredentialsError::not_loaded("no provider had any")),
            None,
        ));
        let call = classify("GetMetricData", e);
        assert_eq!(call.config(), Some(&ConfigError::NoCredentials));
        assert_eq!(
            call.to_string(),
            format!("GetMetricData: {}", ConfigError::NoCredentials)
        );
    }

    #[test]
    fn a_detail_reads_as_its_text_and_keeps_the_call() {
        let call = classify("StopTask", answered(400, Some("InvalidParameterException"), "bad"));
        let detail = Detail::from(call);
        assert_eq!(detail, "StopTask: InvalidParameterException: bad");
        assert!(detail.contains("InvalidParameterException"));
        assert_eq!(
            detail.call().and_then(CallError::code),
            Some("InvalidParameterException")
        );
        let reworded = detail.clone().reworded("task t: bad");
        assert_eq!(reworded.to_string(), "task t: bad");
        assert!(reworded.call().is_some());
        assert_eq!(Detail::from("x"), Detail::from("x".to_owned()));
        assert!(Detail::from("x").call().is_none());
    }
}

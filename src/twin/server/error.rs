//! The twin's errors in AWS's JSON 1.1 shape: `{"__type": …, "message": …}`, the code also in `x-amzn-ErrorType`,
//! HTTP 500 for `ServerException`, 413 for `RequestEntityTooLargeException` and 400 for everything else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ecs::EcsError;

use super::TARGET_PREFIX;

/// An AWS-shaped error.
#[derive(Debug)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// A well-formed request that ECS refuses (a value out of range, a member missing, a batch too large).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidParameterException", message)
    }

    /// A body that is not JSON, or a member of the wrong type.
    pub fn serialization(message: impl Into<String>) -> ApiError {
        ApiError::new("SerializationException", message)
    }

    /// A `X-Amz-Target` that names no operation the twin serves.
    pub fn unknown_operation(target: &str) -> ApiError {
        ApiError::new(
            "UnknownOperationException",
            match target.strip_prefix(TARGET_PREFIX) {
                Some(operation) => format!("the twin does not serve {operation}"),
                None => format!("unknown target {target:?}"),
            },
        )
    }

    /// A request body over [`super::MAX_BODY`] (HTTP 413).
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new("RequestEntityTooLargeException", message)
    }

    /// ECS's own internal error (HTTP 500).
    pub fn server(message: impl Into<String>) -> ApiError {
        ApiError::new("ServerException", message)
    }

    pub fn cluster_not_found() -> ApiError {
        ApiError::new("ClusterNotFoundException", "Cluster not found.")
    }
}

impl From<EcsError> for ApiError {
    fn from(e: EcsError) -> Self {
        match e {
            EcsError::Invalid(m) | EcsError::NotFound(m) => ApiError::invalid(m),
            EcsError::Throttled(m) => ApiError::new("ThrottlingException", m),
            EcsError::Unknown(m) | EcsError::Unavailable(m) | EcsError::Incomplete(m) => ApiError::server(m),
            EcsError::Config(c) => ApiError::server(c.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.code {
            "ServerException" => StatusCode::INTERNAL_SERVER_ERROR,
            "RequestEntityTooLargeException" => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({"__type": self.code, "message": self.message}).to_string();
        (
            status,
            [
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amzn-errortype", self.code),
            ],
            body,
        )
            .into_response()
    }
}

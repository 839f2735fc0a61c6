//! Each request the twin serves, parsed once from its JSON body into a typed value, and the one table of operations.
//!
//! The shapes are ECS's (`camelCase` members, as the AWS JSON 1.1 protocol sends them), holding only the members the
//! twin reads: other members are ignored, as AWS ignores members it does not know. A body that is not JSON, or a
//! member of the wrong type, is a `SerializationException` naming the member; a member that is well-typed but
//! wrong (out of range, missing when required) is left to the operation, which answers `InvalidParameterException`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// What kind of call an operation is: which faults the server may inject into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    /// A `Describe…` call: its last item may be reported in `failures[]`.
    Describe,
    /// `GetTaskProtection`: its last task may be reported in `failures[]`.
    ProtectionRead,
    /// A call that changes the twin: its answer may be lost after the change.
    Mutation,
}

/// One served operation: its `X-Amz-Target` name, its kind, and how its body becomes a [`Request`].
pub struct Operation {
    pub name: &'static str,
    pub kind: Kind,
    parse: fn(&[u8]) -> Result<Request, ApiError>,
}

impl Operation {
    /// The request in `body` (an empty body is an empty object).
    pub fn parse(&self, body: &[u8]) -> Result<Request, ApiError> {
        (self.parse)(body)
    }
}

/// Every ECS operation the twin serves (CloudWatch's GetMetricData has its own path). The only list of them.
pub const OPERATIONS: [Operation; 17] = [
    Operation {
        name: "ListClusters",
        kind: Kind::Read,
        parse: |b| parse(b).map(Request::ListClusters),
    },
    Operation {
        name: "DescribeClusters",
        kind: Kind::Describe,
        parse: |b| parse(b).map(Request::DescribeClusters),
    },
    Operation {
        name: "ListContainerInstances",
        kind: Kind::Read,
        parse: |b| parse(b).map(Request::ListContainerInstances),
    },
    Operation {
        name: "DescribeContainerInstances",
        kind: Kind::Describe,
        parse: |b| parse(b).map(Request::DescribeContainerInstances),
    },
    Operation {
        name: "UpdateContainerInstancesState",
        kind: Kind::Mutation,
        parse: |b| parse(b).map(Request::UpdateContainerInstancesState),
    },
    Operation {
        name: "ListServices",
        kind: Kind::Read,
        parse: |b| parse(b).map(Request::ListServices),
    },
    Operation {
        name: "DescribeServices",
        kind: Kind::Describe,
        parse: |b| parse(b).map(Request::DescribeServices),
    },
    Operation {
        name: "UpdateService",
        kind: Kind::Mutation,
        parse: |b| parse(b).map(Request::UpdateService),
    },
    Operation {
        name: "ListTasks",
        kind: Kind::Read,
        parse: |b| parse(b).map(Request::ListTasks),
    },
    Operation {
        name: "DescribeTasks",
        kind: Kind::Describe,
        parse: |b| parse(b).map(Request::DescribeTasks),
    },
    Operation {
        name: "StopTask",
        kind: Kind::Mutation,
        parse: |b| parse(b).map(Request::StopTask),
    },
    Operation {
        name: "DescribeTaskDefinition",
        kind: Kind::Describe,
        parse: |b| parse(b).map(Request::DescribeTaskDefinition),
    },
    Operation {
        name: "ListTagsForResource",
        kind: Kind::Read,
        parse: |b| parse(b).map(Request::ListTagsForResource),
    },
    Operation {
        name: "ListAttributes",
        kind: Kind::Read,
        parse: |b| parse(b).map(Request::ListAttributes),
    },
    Operation {
        name: "PutAttributes",
        kind: Kind::Mutation,
        parse: |b| parse(b).map(Request::PutAttributes),
    },
    Operation {
        name: "GetTaskProtection",
        kind: Kind::ProtectionRead,
        parse: |b| parse(b).map(Request::GetTaskProtection),
    },
    Operation {
        name: "UpdateTaskProtection",
        kind: Kind::Mutation,
        parse: |b| parse(b).map(Request::UpdateTaskProtection),
    },
];

/// The served operation of that name.
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// One parsed request.
#[derive(Debug)]
pub enum Request {
    ListClusters(ListClusters),
    DescribeClusters(DescribeClusters),
    ListContainerInstances(ListContainerInstances),
    DescribeContainerInstances(DescribeContainerInstances),
    UpdateContainerInstancesState(UpdateContainerInstancesState),
    ListServices(ListServices),
    DescribeServices(DescribeServices),
    UpdateService(UpdateService),
    ListTasks(ListTasks),
    DescribeTasks(DescribeTasks),
    StopTask(StopTask),
    DescribeTaskDefinition(DescribeTaskDefinition),
    ListTagsForResource(ListTagsForResource),
    ListAttributes(ListAttributes),
    PutAttributes(PutAttributes),
    GetTaskProtection(GetTaskProtection),
    UpdateTaskProtection(UpdateTaskProtection),
}

/// A body as `T`, or a `SerializationException` naming what is wrong and where.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    // serde would also take a struct from a JSON array, member by member in order: AWS takes objects only.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::serialization("the request body is not a JSON object"));
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let at = e.path().to_string();
        let e = e.into_inner();
        ApiError::serialization(match e.classify() {
            serde_json::error::Category::Data => format!("{at}: {e}"),
            _ => format!("malformed JSON: {e}"),
        })
    })?;
    json.end()
        .map_err(|e| ApiError::serialization(format!("malformed JSON: {e}")))?;
    Ok(value)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListClusters {
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeClusters {
    pub clusters: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListContainerInstances {
    pub cluster: Option<String>,
    pub status: Option<String>,
    pub filter: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeContainerInstances {
    pub cluster: Option<String>,
    pub container_instances: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContainerInstancesState {
    pub cluster: Option<String>,
    pub container_instances: Option<Vec<String>>,
    pub status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServices {
    pub cluster: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeServices {
    pub cluster: Option<String>,
    pub services: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateService {
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub desired_count: Option<i64>,
    pub force_new_deployment: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTasks {
    pub cluster: Option<String>,
    pub container_instance: Option<String>,
    pub service_name: Option<String>,
    pub family: Option<String>,
    pub started_by: Option<String>,
    pub desired_status: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTasks {
    pub cluster: Option<String>,
    pub tasks: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTask {
    pub cluster: Option<String>,
    pub task: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTaskDefinition {
    pub task_definition: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResource {
    pub resource_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAttributes {
    pub cluster: Option<String>,
    pub target_type: Option<String>,
    pub attribute_name: Option<String>,
    pub attribute_value: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutAttributes {
    pub cluster: Option<String>,
    pub attributes: Option<Vec<Attribute>>,
}

/// An attribute as `PutAttributes` takes it and answers it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTaskProtection {
    pub cluster: Option<String>,
    pub tasks: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTaskProtection {
    pub cluster: Option<String>,
    pub tasks: Option<Vec<String>>,
    pub protection_enabled: Option<bool>,
    pub expires_in_minutes: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_named_once_and_parses_an_empty_body() {
        let mut names: Vec<&str> = OPERATIONS.iter().map(|o| o.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATIONS.len(), "a name is listed twice");
        for o in &OPERATIONS {
            assert!(o.parse(b"").is_ok(), "{}", o.name);
            assert!(o.parse(b"{}").is_ok(), "{}", o.name);
            assert_eq!(operation(o.name).map(|f| f.name), Some(o.name));
        }
        assert!(operation("RunTask").is_none());
    }

    #[test]
    fn each_operation_parses_into_its_own_variant() {
        let parsed = |name: &str, body: &str| operation(name).unwrap().parse(body.as_bytes()).unwrap();
        assert!(matches!(
            parsed("ListTasks", r#"{"serviceName": "web", "maxResults": 5, "include": ["TAGS"]}"#),
            Request::ListTasks(ListTasks { service_name: Some(s), max_results: Some(5), .. }) if s == "web"
        ));
        assert!(matches!(
            parsed("UpdateService", r#"{"service": "web", "forceNewDeployment": true}"#),
            Request::UpdateService(UpdateService {
                force_new_deployment: Some(true),
                ..
            })
        ));
        assert!(matches!(
            parsed("PutAttributes", r#"{"attributes": [{"name": "a", "targetId": "i"}]}"#),
            Request::PutAttributes(PutAttributes { attributes: Some(a), .. }) if a.len() == 1
        ));
        // Null is absent, as in AWS's JSON protocol.
        assert!(matches!(
            parsed("DescribeTasks", r#"{"tasks": null}"#),
            Request::DescribeTasks(DescribeTasks { tasks: None, .. })
        ));
    }

    #[test]
    fn a_malformed_body_is_a_serialization_exception_naming_the_member() {
        let error = |name: &str, body: &str| operation(name).unwrap().parse(body.as_bytes()).unwrap_err();
        let e = error("ListTasks", r#"{"maxResults": "ten"}"#);
        assert_eq!(e.code, "SerializationException");
        assert!(
            e.message.starts_with("maxResults: invalid type: string"),
            "{}",
            e.message
        );
        let e = error("DescribeTasks", r#"{"tasks": ["a", 7]}"#);
        assert!(
            e.message.starts_with("tasks[1]: invalid type: integer"),
            "{}",
            e.message
        );
        let e = error("PutAttributes", r#"{"attributes": [{"name": true}]}"#);
        assert!(e.message.starts_with("attributes[0].name: "), "{}", e.message);
        let e = error("UpdateService", r#"{"forceNewDeployment": "yes"}"#);
        assert!(e.message.starts_with("forceNewDeployment: "), "{}", e.message);
        for bad in [r#"["c", "task", "reason"]"#, "not json", "7", "null"] {
            let e = error("StopTask", bad);
            assert_eq!(e.code, "SerializationException");
            assert_eq!(e.message, "the request body is not a JSON object", "{bad}");
        }
        for bad in [r#"{"task": "#, r#"{"task" "t"}"#, r#"{} {}"#] {
            let e = error("StopTask", bad);
            assert_eq!(e.code, "SerializationException");
            assert!(e.message.starts_with("malformed JSON: "), "{bad}: {}", e.message);
        }
    }
}

//! The twin's CloudWatch face: `GetMetricData` for Container Insights' instance metrics, over the Smithy RPC v2 CBOR
//! protocol that `aws-sdk-cloudwatch` speaks (`POST /service/GraniteServiceVersion20100801/operation/GetMetricData`,
//! `smithy-protocol: rpc-v2-cbor`, CBOR maps with AWS's PascalCase member names, timestamps as tag 1 epoch seconds).
//! moto does not serve this protocol (seen with moto 5.2.1 and 5.2.5).
//!
//! Each instance's utilisation in the twin (the snapshot's `utilization`) is reported as a constant series, one
//! datapoint per period, from the request's `StartTime` up to one period before its `EndTime` (Container Insights
//! publishes about a minute late). Instances without utilisation have no datapoints: unknown, as in CloudWatch.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ciborium::Value;

use crate::model::Snapshot;
use crate::utilization::cloudwatch::{CPU, MEMORY, NAMESPACE, QUERIES_PER_CALL};

/// The path of the operation.
pub const PATH: &str = "/service/GraniteServiceVersion20100801/operation/GetMetricData";

/// The most datapoints one series returns (a bound on the answer's size, not AWS's paging).
const MAX_POINTS: i64 = 1440;

fn cbor(status: StatusCode, body: &Value) -> Response {
    let mut bytes = Vec::new();
    if ciborium::into_writer(body, &mut bytes).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        status,
        [("content-type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")],
        bytes,
    )
        .into_response()
}

fn error(code: &str, message: String) -> Response {
    let body = Value::Map(vec![
        (Value::Text("__type".into()), Value::Text(code.into())),
        (Value::Text("message".into()), Value::Text(message)),
    ]);
    cbor(StatusCode::BAD_REQUEST, &body)
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find_map(|(k, v)| (k.as_text() == Some(key)).then_some(v))
}

fn text<'a>(map: &'a Value, key: &str) -> Option<&'a str> {
    get(map, key)?.as_text()
}

/// A timestamp: tag 1 around an integer or a float of epoch seconds.
fn epoch(v: &Value) -> Option<i64> {
    let inner = match v {
        Value::Tag(1, inner) => inner.as_ref(),
        other => other,
    };
    match inner {
        Value::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        #[allow(clippy::cast_possible_truncation)] // epoch seconds fit an i64
        Value::Float(f) => Some(f.floor() as i64),
        _ => None,
    }
}

fn timestamp(secs: i64) -> Value {
    Value::Tag(1, Box::new(Value::Integer(secs.into())))
}

/// Answers one `GetMetricData` call from the twin's current state.
pub fn get_metric_data(snapshot: &Snapshot, body: &Bytes) -> Response {
    let request: Value = match ciborium::from_reader(&body[..]) {
        Ok(v) => v,
        Err(e) => return error("SerializationException", format!("malformed CBOR: {e}")),
    };
    let queries = match get(&request, "MetricDataQueries").and_then(Value::as_array) {
        Some(q) => q,
        None => return error("InvalidParameterValue", "MetricDataQueries is required".into()),
    };
    if queries.len() > QUERIES_PER_CALL {
        return error(
            "InvalidParameterValue",
            format!("The collection MetricDataQueries must not have a size greater than {QUERIES_PER_CALL}."),
        );
    }
    let (Some(start), Some(end)) = (
        get(&request, "StartTime").and_then(epoch),
        get(&request, "EndTime").and_then(epoch),
    ) else {
        return error("InvalidParameterValue", "StartTime and EndTime are required".into());
    };
    let mut results = Vec::with_capacity(queries.len());
    for q in queries {
        let id = text(q, "Id").unwrap_or_default().to_owned();
        let stat = get(q, "MetricStat");
        let metric = stat.and_then(|s| get(s, "Metric"));
        let period = stat
            .and_then(|s| get(s, "Period"))
            .and_then(|p| p.as_integer())
            .and_then(|p| i64::try_from(i128::from(p)).ok())
            .filter(|p| *p > 0)
            .unwrap_or(60);
        let dimension = |name: &str| {
            metric
                .and_then(|m| get(m, "Dimensions"))
                .and_then(Value::as_array)
                .and_then(|ds| ds.iter().find(|d| text(d, "Name") == Some(name)))
                .and_then(|d| text(d, "Value"))
        };
        let namespace = metric.and_then(|m| text(m, "Namespace"));
        let name = metric.and_then(|m| text(m, "MetricName"));
        let value = (namespace == Some(NAMESPACE) && dimension("ClusterName") == Some(snapshot.cluster.as_str()))
            .then(|| {
                let instance = snapshot.container_instances.iter().find(|i| {
                    Some(i.container_instance_arn.rsplit('/').next().unwrap_or_default())
                        == dimension("ContainerInstanceId")
                        && i.ec2_instance_id.as_deref() == dimension("InstanceId")
                })?;
                let u = snapshot.utilization.get(&instance.container_instance_arn)?;
                match name {
                    Some(CPU) => u.cpu,
                    Some(MEMORY) => u.memory,
                    _ => None,
                }
            })
            .flatten();
        let mut timestamps = Vec::new();
        let mut values = Vec::new();
        if let Some(v) = value {
            // Newest first, as GetMetricData's default TimestampDescending.
            let newest = (end - period) - (end - period).rem_euclid(period);
            let mut t = newest;
            while t >= start && timestamps.len() < MAX_POINTS as usize {
                timestamps.push(timestamp(t));
                values.push(Value::Float(v * 100.0));
                t -= period;
            }
        }
        results.push(Value::Map(vec![
            (Value::Text("Id".into()), Value::Text(id.clone())),
            (Value::Text("Label".into()), Value::Text(name.unwrap_or(&id).to_owned())),
            (Value::Text("Timestamps".into()), Value::Array(timestamps)),
            (Value::Text("Values".into()), Value::Array(values)),
            (Value::Text("StatusCode".into()), Value::Text("Complete".into())),
        ]));
    }
    let body = Value::Map(vec![
        (Value::Text("MetricDataResults".into()), Value::Array(results)),
        (Value::Text("Messages".into()), Value::Array(Vec::new())),
    ]);
    cbor(StatusCode::OK, &body)
}

//! [`UtilizationSource`] over CloudWatch `GetMetricData`: the only file that imports `aws-sdk-cloudwatch`.
//!
//! Container Insights publishes `instance_cpu_utilization` and `instance_memory_utilization` (percent) in namespace
//! `ECS/ContainerInsights` with dimensions `ClusterName`, `InstanceId` (the EC2 id) and `ContainerInstanceId`
//! (docs/ecs.md: Container Insights). Two queries per instance, at most 500 queries a call (250 instances), every page followed (the
//! SDK's paginator). A failed call is classified by [`crate::aws::call`] and kept in the [`SourceError`].

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::primitives::DateTime as AwsTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_cloudwatch::Client;
use aws_smithy_types_convert::date_time::DateTimeExt as _;
use chrono::{DateTime, Utc};

use crate::aws::call::classify;
use crate::model::{Snapshot, Utilization};

use super::{summarize, SourceError, UtilizationSource, Window};

pub const NAMESPACE: &str = "ECS/ContainerInsights";
pub const CPU: &str = "instance_cpu_utilization";
pub const MEMORY: &str = "instance_memory_utilization";
/// GetMetricData's limit on queries per call.
pub const QUERIES_PER_CALL: usize = 500;
/// Container Insights' resolution for instance metrics.
const PERIOD_SECONDS: i32 = 60;

/// Container Insights through CloudWatch.
pub struct CloudWatch {
    client: Client,
    window: Window,
}

impl CloudWatch {
    /// A client from a loaded AWS configuration (endpoint from `AWS_ENDPOINT_URL_CLOUDWATCH` or `AWS_ENDPOINT_URL`
    /// when set, or `endpoint_url`).
    pub fn from_conf(conf: &aws_config::SdkConfig, endpoint_url: Option<&str>, window: Window) -> CloudWatch {
        let mut builder = aws_sdk_cloudwatch::config::Builder::from(conf);
        if let Some(url) = endpoint_url {
            builder = builder.endpoint_url(url);
        }
        CloudWatch {
            client: Client::from_conf(builder.build()),
            window,
        }
    }
}

/// The last segment of a container instance ARN: Container Insights' `ContainerInstanceId`.
fn container_instance_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn query(id: String, metric: &str, cluster: &str, ec2: &str, arn: &str) -> MetricDataQuery {
    let dimension = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(NAMESPACE)
                        .metric_name(metric)
                        .dimensions(dimension("ClusterName", cluster))
                        .dimensions(dimension("InstanceId", ec2))
                        .dimensions(dimension("ContainerInstanceId", container_instance_id(arn)))
                        .build(),
                )
                .period(PERIOD_SECONDS)
                .stat("Average")
                .build(),
        )
        .return_data(true)
        .build()
}

fn aws_time(t: DateTime<Utc>) -> AwsTime {
    AwsTime::from_secs(t.timestamp())
}

impl UtilizationSource for CloudWatch {
    async fn fetch(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Utilization>, SourceError> {
        // Query ids must start with a lowercase letter: `c<n>` and `m<n>` for the n-th instance that has an EC2 id.
        let measured: Vec<(&str, &str)> = snapshot
            .container_instances
            .iter()
            .filter_map(|i| Some((i.container_instance_arn.as_str(), i.ec2_instance_id.as_deref()?)))
            .collect();
        let lookback = chrono::Duration::from_std(self.window.lookback()).unwrap_or(chrono::Duration::zero());
        let start = now - lookback - chrono::Duration::seconds(i64::from(PERIOD_SECONDS));
        let mut points: BTreeMap<String, Vec<(DateTime<Utc>, f64)>> = BTreeMap::new();
        for (chunk_no, chunk) in measured.chunks(QUERIES_PER_CALL / 2).enumerate() {
            let queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .flat_map(|(k, (arn, ec2))| {
                    let n = chunk_no * QUERIES_PER_CALL / 2 + k;
                    [
                        query(format!("c{n}"), CPU, &snapshot.cluster, ec2, arn),
                        query(format!("m{n}"), MEMORY, &snapshot.cluster, ec2, arn),
                    ]
                })
                .collect();
            let mut pages = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries))
                .start_time(aws_time(start))
                .end_time(aws_time(now))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let out = page.map_err(|e| SourceError(classify("GetMetricData", e).into()))?;
                for result in out.metric_data_results() {
                    let Some(id) = result.id() else { continue };
                    let series = points.entry(id.to_owned()).or_default();
                    for (t, v) in result.timestamps().iter().zip(result.values()) {
                        if let Ok(t) = t.to_chrono_utc() {
                            series.push((t, *v));
                        }
                    }
                }
            }
        }
        let mut found = BTreeMap::new();
        for (n, (arn, _)) in measured.iter().enumerate() {
            let value = |prefix: char| {
                points
                    .get(&format!("{prefix}{n}"))
                    .and_then(|p| summarize(p, now, self.window))
            };
            let u = Utilization {
                cpu: value('c'),
                memory: value('m'),
            };
            if u.cpu.is_some() || u.memory.is_some() {
                found.insert((*arn).to_owned(), u);
            }
        }
        Ok(found)
    }
}

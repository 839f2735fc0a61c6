//! Timestamps as the AWS CLI prints them (RFC 3339 strings) or as the ECS JSON protocol sends them (epoch seconds,
//! possibly fractional). Both load; RFC 3339 with `Z` is written.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// `#[serde(with = "timestamp::option")]` for `Option<DateTime<Utc>>` fields.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Epoch(f64),
        }
        match Option::<Wire>::deserialize(d)? {
            None => Ok(None),
            Some(Wire::Text(s)) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {s:?}: {e} (expected RFC 3339)"))),
            Some(Wire::Epoch(secs)) => from_epoch(secs)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid epoch timestamp {secs}"))),
        }
    }
}

/// Epoch seconds (as the ECS JSON protocol sends them) to a UTC time; `None` when out of range or not finite.
pub fn from_epoch(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)] // bounded by the range check chrono does below
    let millis = (secs * 1000.0).round() as i64;
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(default, with = "super::option")]
        at: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[test]
    fn cli_strings_and_protocol_epochs_load_to_the_same_instant() {
        let a: T = serde_json::from_str(r#"{"at": "2026-11-21T09:01:30.500000+00:00"}"#).unwrap();
        let b: T = serde_json::from_str(r#"{"at": 1795251690.5}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"at":"2026-11-21T09:01:30.500Z"}"#
        );
    }

    #[test]
    fn garbage_timestamps_are_errors_not_defaults() {
        let e = serde_json::from_str::<T>(r#"{"at": "yesterday"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid timestamp \"yesterday\""), "{e}");
    }
}

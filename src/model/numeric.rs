//! ECS sends some numbers as strings (`Task.cpu`, `Container.memoryReservation`). Hand-written snapshots and some
//! emulators write them as JSON numbers; both load, and the string form is written back.

use serde::{Deserialize, Deserializer};

/// `#[serde(deserialize_with = "numeric::string_or_number")]` for `Option<String>` fields.
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Text(String),
        Int(i64),
        Float(f64),
    }
    Ok(Option::<Wire>::deserialize(d)?.map(|w| match w {
        Wire::Text(s) => s,
        Wire::Int(i) => i.to_string(),
        Wire::Float(f) => f.to_string(),
    }))
}

//! How status times look in the schema. They are `jiff::Timestamp`s in the types (compared
//! and added to, never parsed by hand), written as RFC 3339 as they always were, so statuses
//! written as strings before read the same.

use schemars::JsonSchema;
use std::borrow::Cow;

/// The schema of a time: an RFC 3339 string, as Kubernetes' own times.
pub struct Rfc3339;

impl JsonSchema for Rfc3339 {
    fn schema_name() -> Cow<'static, str> {
        "Rfc3339".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

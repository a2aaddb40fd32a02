//! Admission rules for types the API embeds but does not define: ciclo-core's dataset
//! expectations (kube-free, so they carry no Kubernetes schema extensions) and k8s-openapi's
//! `ResourceRequirements`. Each function is a schemars transform for the embedding field
//! (`#[schemars(transform = ..)]`), so the rules live next to the other CEL rules of the API.
//!
//! The bounds (`maxItems`, `maxLength`, `maxProperties`) are there for CEL: the API server
//! estimates a rule's cost from the longest list and string the schema allows, and refuses a
//! CRD whose rules could cost too much.

use kube::core::{Rule, validate};
use schemars::Schema;
use serde_json::{Map, Value, json};

/// The object schema inside `schema`: itself, or the non-null branch of an `Option`'s
/// `anyOf`.
fn object(schema: &mut Schema) -> Option<&mut Map<String, Value>> {
    let map = schema.as_object_mut()?;
    if map.contains_key("properties") {
        return Some(map);
    }
    map.get_mut("anyOf")?
        .as_array_mut()?
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|branch| branch.contains_key("properties"))
}

/// The schema of property `name` of an object schema.
fn property<'a>(object: &'a mut Map<String, Value>, name: &str) -> &'a mut Map<String, Value> {
    object
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .and_then(|p| p.get_mut(name))
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("the schema has a property {name:?}"))
}

/// Adds (or replaces) keywords of `schema`.
fn set(schema: &mut Map<String, Value>, pairs: Value) {
    if let Value::Object(pairs) = pairs {
        schema.extend(pairs);
    }
}

/// Appends `rule` to the `x-kubernetes-validations` of `schema`.
fn rule(schema: &mut Map<String, Value>, rule: Rule) {
    let mut s = Schema::from(std::mem::take(schema));
    validate(&mut s, rule).expect("a rule serialises");
    *schema = s.as_object().expect("still an object").clone();
}

/// `spec.schema` of a Dataset (`ciclo_core::expectations::Expectations`).
pub(crate) fn expectations(schema: &mut Schema) {
    let expectations = object(schema).expect("Expectations is an object");
    let columns = property(expectations, "columns");
    // Column names are unique: a list keyed by name, so the API server refuses a duplicate
    // without a CEL rule whose cost would grow with the square of the list, and server-side
    // apply merges columns by name.
    set(
        columns,
        json!({"maxItems": 512, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    );
    let column = columns
        .get_mut("items")
        .and_then(Value::as_object_mut)
        .expect("columns has items");
    set(property(column, "name"), json!({"maxLength": 256}));
    let allowed = property(column, "allowedValues");
    set(allowed, json!({"maxItems": 500}));
    set(
        allowed
            .get_mut("items")
            .and_then(Value::as_object_mut)
            .expect("allowedValues has items"),
        json!({"maxLength": 128}),
    );
    rule(
        column,
        Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max")
            .message("min must not be greater than max")
            .field_path(".min"),
    );
    // The checker compares min and max with numbers, and reads integers, floats and
    // timestamps (seconds since the epoch) as numbers; on a string or boolean column every
    // version would fail.
    rule(
        column,
        Rule::new("!has(self.type) || self.type in ['integer', 'float', 'timestamp'] || (!has(self.min) && !has(self.max))")
            .message("min and max apply only to integer, float and timestamp columns")
            .field_path(".type"),
    );
    // The checker compares allowed values with each value's text as arrow casts it to a
    // string. A string is compared as written, and an integer's or a boolean's text is the
    // plain form anyone would write (`7`, `true`). A float's text is arrow's shortest
    // round-trip form (a `1` in a float column reads `1.0`) and a timestamp's is ISO 8601
    // in arrow's own precision (`2024-01-01 10:00` reads `2024-01-01T10:00:00`), so a list
    // written as the file reads would reject data that matches it; min and max are the check
    // for those columns.
    rule(
        column,
        Rule::new("!has(self.type) || self.type in ['string', 'integer', 'boolean'] || !has(self.allowedValues) || size(self.allowedValues) == 0")
            .message("allowedValues apply only to string, integer and boolean columns (values are compared as text)")
            .field_path(".allowedValues"),
    );
    rule(
        column,
        Rule::new("!has(self.type) || self.type != 'boolean' || !has(self.allowedValues) || self.allowedValues.all(v, v in ['true', 'false'])")
            .message("allowedValues of a boolean column must be true or false")
            .field_path(".allowedValues"),
    );
}

/// `resources` of a TrainingRun or ModelDeployment (`ResourceRequirements`): k8s-openapi
/// types each quantity as int-or-string without a pattern, so without these rules the API
/// server accepts `cpu: lots` and only the Job or Deployment built from it is refused.
pub(crate) fn resources(schema: &mut Schema) {
    let resources = object(schema).expect("ResourceRequirements is an object");
    for name in ["limits", "requests"] {
        let map = property(resources, name);
        set(map, json!({"maxProperties": 16}));
        let quantity = map
            .get_mut("additionalProperties")
            .and_then(Value::as_object_mut)
            .expect("a quantity map has additionalProperties");
        set(quantity, json!({"maxLength": 64}));
        rule(
            quantity,
            Rule::new(
                "isQuantity(string(self)) && !quantity(string(self)).isLessThan(quantity('0'))",
            )
            .message("must be a quantity that is not negative, such as 500m, 2Gi or 4"),
        );
    }
    rule(
        resources,
        Rule::new("!has(self.requests) || !has(self.limits) || self.requests.all(r, !(r in self.limits) || !isQuantity(string(self.requests[r])) || !isQuantity(string(self.limits[r])) || quantity(string(self.requests[r])).compareTo(quantity(string(self.limits[r]))) <= 0)")
            .message("a request must not exceed the limit of the same resource")
            .field_path(".requests"),
    );
    // The pods ciclo creates declare no resource claims, so a claim could never be met.
    rule(
        resources,
        Rule::new("!has(self.claims) || size(self.claims) == 0")
            .message("resource claims are not supported: ciclo's pods declare no resourceClaims")
            .field_path(".claims"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_s_object_is_found_in_its_any_of() {
        let mut s = Schema::try_from(
            json!({"anyOf": [{"type": "object", "properties": {"a": {}}}, {"type": "null"}]}),
        )
        .unwrap();
        assert!(object(&mut s).is_some_and(|o| o.contains_key("properties")));
    }
}

//! Flattening an OpenAPI v3 schema (as a CRD holds it) into one row per field: nested
//! objects become dotted paths, array items `[]`, map values `.*`.

use serde_yaml::Value;

/// One field of a schema, as the reference shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// `spec.source.uri`, `spec.schema.columns[].name`.
    pub path: String,
    /// `string`, `integer (int32)`, `[]string`, `map[string]number (double)`, `object`.
    pub type_: String,
    pub required: bool,
    /// The schema's default, as JSON (strings bare).
    pub default: Option<String>,
    /// The allowed values (an array's: its items'); `null` is left out.
    pub allowed: Vec<String>,
    pub description: String,
    /// Bounds, list-map keys, and each CEL rule with its message.
    pub validation: Vec<Validation>,
}

/// A constraint on a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    /// A bound or shape from the OpenAPI keywords, written out (`≤ 100`, `length ≤ 32`).
    Bound(String),
    /// An `x-kubernetes-validations` rule: the CEL expression, the message the API server
    /// answers with, and the field it reports when that is not this one.
    Rule {
        rule: String,
        message: Option<String>,
        field_path: Option<String>,
    },
}

/// The rows of `schema` at `path` (itself first), then its children's, depth first, with
/// properties in alphabetical order so the output never depends on the YAML's key order.
pub fn flatten(path: &str, schema: &Value, required: bool) -> Vec<Field> {
    let mut out = Vec::new();
    walk(path, schema, required, &mut out);
    out
}

fn walk(path: &str, schema: &Value, required: bool, out: &mut Vec<Field>) {
    out.push(field(path, schema, required));
    children(path, schema, out);
}

/// The fields inside `schema`: its properties, its items' properties (an array of objects),
/// its values' properties (a map of objects). Scalars inside arrays and maps are described by
/// the enclosing row's type.
fn children(path: &str, schema: &Value, out: &mut Vec<Field>) {
    if let Some(properties) = schema["properties"].as_mapping() {
        let required: Vec<&str> = schema["required"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut names: Vec<(&str, &Value)> = properties
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .collect();
        names.sort_by_key(|(name, _)| *name);
        for (name, child) in names {
            walk(
                &format!("{path}.{name}"),
                child,
                required.contains(&name),
                out,
            );
        }
    }
    if schema["items"].is_mapping() {
        children(&format!("{path}[]"), &schema["items"], out);
    }
    if schema["additionalProperties"].is_mapping() {
        children(&format!("{path}.*"), &schema["additionalProperties"], out);
    }
}

fn field(path: &str, schema: &Value, required: bool) -> Field {
    // An array's allowed values are its items'.
    let allowed_from = if schema["items"].is_mapping() {
        &schema["items"]
    } else {
        schema
    };
    Field {
        path: path.to_string(),
        type_: type_name(schema),
        required,
        default: default(&schema["default"]),
        allowed: allowed_from["enum"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|v| !v.is_null())
            .map(scalar)
            .collect(),
        description: description(schema["description"].as_str().unwrap_or_default()),
        validation: validation(schema),
    }
}

/// The type as a reader writes it: `[]T` for arrays, `map[string]T` for maps, the OpenAPI
/// format in brackets.
pub fn type_name(schema: &Value) -> String {
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        return "int or string".into();
    }
    match schema["type"].as_str() {
        Some("array") => format!("[]{}", type_name(&schema["items"])),
        Some("object") if schema["additionalProperties"].is_mapping() => {
            format!("map[string]{}", type_name(&schema["additionalProperties"]))
        }
        Some(t) => match schema["format"].as_str() {
            Some(format) => format!("{t} ({format})"),
            None => t.to_string(),
        },
        None => "any".into(),
    }
}

fn default(value: &Value) -> Option<String> {
    (!value.is_null()).then(|| scalar(value))
}

/// A value as text: strings bare, everything else as compact JSON.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => number(n),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// `1`, not `1.0`: the CRD writes bounds as floats.
fn number(n: &serde_yaml::Number) -> String {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i.to_string(),
        (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => (f as i64).to_string(),
        _ => n.to_string(),
    }
}

/// The description's first paragraph on one line: ciclo's own descriptions are one
/// paragraph; the Kubernetes types' (resources, tolerations) go on for pages that
/// `kubectl explain` shows in full.
fn description(text: &str) -> String {
    let first = text.split("\n\n").next().unwrap_or_default();
    first.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn validation(schema: &Value) -> Vec<Validation> {
    let mut out = Vec::new();
    let bounds = [
        ("minimum", "≥ "),
        ("maximum", "≤ "),
        ("minLength", "length ≥ "),
        ("maxLength", "length ≤ "),
        ("minItems", "items ≥ "),
        ("maxItems", "items ≤ "),
        ("minProperties", "entries ≥ "),
        ("maxProperties", "entries ≤ "),
        ("pattern", "matches "),
    ];
    for (keyword, text) in bounds {
        if let Some(value) = schema.get(keyword) {
            out.push(Validation::Bound(format!("{text}{}", scalar(value))));
        }
    }
    if schema["x-kubernetes-list-type"].as_str() == Some("map") {
        let keys: Vec<String> = schema["x-kubernetes-list-map-keys"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|k| format!("`{}`", scalar(k)))
            .collect();
        out.push(Validation::Bound(format!(
            "one entry per {}",
            keys.join(" + ")
        )));
    } else if schema["x-kubernetes-list-type"].as_str() == Some("set") {
        out.push(Validation::Bound("no duplicates".into()));
    }
    for rule in schema["x-kubernetes-validations"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        out.push(Validation::Rule {
            rule: scalar(&rule["rule"]),
            message: rule["message"].as_str().map(str::to_string),
            field_path: rule["fieldPath"].as_str().map(str::to_string),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(yaml: &str) -> Value {
        serde_yaml::from_str(yaml).unwrap()
    }

    const NESTED: &str = r#"
type: object
required: [source]
properties:
  tags: {type: array, items: {type: string, enum: [a, b, null]}}
  source:
    type: object
    required: [uri]
    properties:
      uri: {type: string, maxLength: 2048}
      region: {type: string, nullable: true}
  columns:
    type: array
    items:
      type: object
      required: [name]
      properties:
        name: {type: string, minLength: 1}
        max: {type: number, format: double}
  params: {type: object, additionalProperties: {type: string}}
"#;

    #[test]
    fn nested_fields_are_flattened_into_dotted_paths_in_alphabetical_order() {
        let rows = flatten("spec", &schema(NESTED), true);
        let paths: Vec<(&str, &str, bool)> = rows
            .iter()
            .map(|f| (f.path.as_str(), f.type_.as_str(), f.required))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("spec", "object", true),
                ("spec.columns", "[]object", false),
                ("spec.columns[].max", "number (double)", false),
                ("spec.columns[].name", "string", true),
                ("spec.params", "map[string]string", false),
                ("spec.source", "object", true),
                ("spec.source.region", "string", false),
                ("spec.source.uri", "string", true),
                ("spec.tags", "[]string", false),
            ]
        );
    }

    #[test]
    fn an_arrays_allowed_values_are_its_items_without_null() {
        let rows = flatten("spec", &schema(NESTED), true);
        let tags = rows.iter().find(|f| f.path == "spec.tags").unwrap();
        assert_eq!(tags.allowed, vec!["a", "b"]);
    }

    #[test]
    fn bounds_defaults_and_rules_are_kept_with_their_messages() {
        let s = schema(
            r#"
type: integer
format: int32
default: 10
minimum: 1.0
maximum: 100.0
description: |-
  How many versions the status
  keeps.

  Further detail that only kubectl explain needs.
x-kubernetes-validations:
- {rule: "self >= 1 || self == 0", message: "must be positive", fieldPath: .limit}
"#,
        );
        let f = &flatten("spec.historyLimit", &s, false)[0];
        assert_eq!(f.type_, "integer (int32)");
        assert_eq!(f.default.as_deref(), Some("10"));
        assert_eq!(f.description, "How many versions the status keeps.");
        assert_eq!(
            f.validation,
            vec![
                Validation::Bound("≥ 1".into()),
                Validation::Bound("≤ 100".into()),
                Validation::Rule {
                    rule: "self >= 1 || self == 0".into(),
                    message: Some("must be positive".into()),
                    field_path: Some(".limit".into()),
                },
            ]
        );
    }

    #[test]
    fn object_defaults_are_compact_json_and_quantities_read_as_int_or_string() {
        let s = schema(
            r#"
type: object
default: {port: 8080}
properties:
  limits:
    type: object
    additionalProperties: {x-kubernetes-int-or-string: true}
"#,
        );
        let rows = flatten("spec.runtime", &s, false);
        assert_eq!(rows[0].default.as_deref(), Some(r#"{"port":8080}"#));
        assert_eq!(rows[1].type_, "map[string]int or string");
    }
}

package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func expand(t *testing.T, defs string, name string) map[string]any {
	t.Helper()
	e := newExpander(decode(t, defs))
	return e.document(e.ref(name))
}

func TestAnObjectWithFixedFieldsRefusesOthersButAMapOrAnOpenObjectDoesNot(t *testing.T) {
	got := expand(t, `{"Spec": {"type": "object", "required": ["name"], "properties": {
		"name": {"type": "string"},
		"labels": {"type": "object", "additionalProperties": {"type": "string"}},
		"raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
		        "properties": {"known": {"type": "string"}}}}}}`, "Spec")
	if got["additionalProperties"] != false {
		t.Errorf("fixed-field object: additionalProperties = %v, want false", got["additionalProperties"])
	}
	props := got["properties"].(map[string]any)
	if ap := props["labels"].(map[string]any)["additionalProperties"]; !reflect.DeepEqual(ap, map[string]any{"type": "string"}) {
		t.Errorf("map: additionalProperties = %v, want the value schema", ap)
	}
	if ap, set := props["raw"].(map[string]any)["additionalProperties"]; set {
		t.Errorf("object preserving unknown fields: additionalProperties = %v, want unset", ap)
	}
}

func TestOptionalFieldsMayBeNullAndRequiredOnesMayNot(t *testing.T) {
	got := expand(t, `{"Spec": {"type": "object", "required": ["name"], "properties": {
		"name": {"type": "string"},
		"policy": {"type": "string", "enum": ["Always", "Never"]},
		"port": {"allOf": [{"$ref": "#/components/schemas/IntOrString"}], "description": "d"}}},
		"IntOrString": {"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}}`, "Spec")
	props := got["properties"].(map[string]any)
	if typ := props["name"].(map[string]any)["type"]; typ != "string" {
		t.Errorf("required field: type = %v, want string", typ)
	}
	policy := props["policy"].(map[string]any)
	if !reflect.DeepEqual(policy["type"], []any{"string", "null"}) || !contains(policy["enum"].([]any), nil) {
		t.Errorf("optional enum field = %v, want null in its type and enum", policy)
	}
	port := props["port"].(map[string]any)
	want := []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}, map[string]any{"type": "null"}}
	if !reflect.DeepEqual(port["oneOf"], want) {
		t.Errorf("optional int-or-string field (through allOf/$ref) = %v, want oneOf integer, string, null", port)
	}
}

func TestASelfContainingTypeIsReferredToThroughDefinitions(t *testing.T) {
	got := expand(t, `{"Top": {"type": "object", "properties": {"schema": {"$ref": "#/components/schemas/Props"}}},
		"Props": {"type": "object", "properties": {
			"properties": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Props"}}}}}`, "Top")
	defs, _ := got["definitions"].(map[string]any)
	if _, ok := defs["Props"]; !ok {
		t.Fatalf("definitions = %v, want Props", got["definitions"])
	}
	schema := got["properties"].(map[string]any)["schema"].(map[string]any)
	ref := schema["anyOf"].([]any)[1].(map[string]any)["$ref"]
	if ref != "#/definitions/Props" {
		t.Errorf("optional recursive field = %v, want null or a $ref to #/definitions/Props", schema)
	}
	inner := defs["Props"].(map[string]any)["properties"].(map[string]any)["properties"].(map[string]any)
	if inner["additionalProperties"].(map[string]any)["$ref"] != "#/definitions/Props" {
		t.Errorf("recursion inside the definition = %v, want a $ref to itself", inner)
	}
}

func TestAnEmbeddedResourceAlwaysHasApiVersionKindAndMetadata(t *testing.T) {
	e := newExpander(map[string]any{})
	got := e.schema(decode(t, `{"type": "object", "x-kubernetes-embedded-resource": true,
		"properties": {"spec": {"type": "object"}}}`)).(map[string]any)
	props := got["properties"].(map[string]any)
	for _, name := range []string{"apiVersion", "kind", "metadata", "spec"} {
		if _, ok := props[name]; !ok {
			t.Errorf("embedded resource lacks %s: %v", name, props)
		}
	}
	if got["additionalProperties"] != false {
		t.Errorf("embedded resource: additionalProperties = %v, want false", got["additionalProperties"])
	}
}

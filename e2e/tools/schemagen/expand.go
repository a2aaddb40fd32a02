package main

import (
	"fmt"
	"sort"
	"strings"
)

const (
	openAPIRef    = "#/components/schemas/"
	definitionRef = "#/definitions/"
	draft4        = "http://json-schema.org/draft-04/schema#"
)

// expander turns OpenAPI schemas into standalone JSON schemas. It inlines every $ref
// except those to types that contain themselves (JSONSchemaProps, in a
// CustomResourceDefinition): inlining those never ends, so they go into the document's
// "definitions" and are referred to there. kubeconform reads schemas as draft 4, where a
// $ref hides its sibling keywords; inlining avoids that and gives errors that name the
// field's path rather than a definition.
type expander struct {
	defs   map[string]any
	cyclic map[string]bool // names that reach themselves through references
	used   map[string]bool // cyclic names the current document refers to
}

func newExpander(defs map[string]any) *expander {
	return &expander{defs: defs, cyclic: cyclicNames(defs), used: map[string]bool{}}
}

// ref is the schema of the named definition.
func (e *expander) ref(name string) any {
	if e.cyclic[name] {
		e.used[name] = true
		return map[string]any{"$ref": definitionRef + name}
	}
	def, ok := e.defs[name]
	if !ok {
		panic(fmt.Sprintf("reference to unknown schema %q", name))
	}
	return e.schema(def)
}

// document makes a top-level schema file of root: its dialect, and the definitions of the
// self-containing types it refers to (which may refer to further ones).
func (e *expander) document(root any) map[string]any {
	doc, _ := root.(map[string]any)
	if doc == nil {
		doc = map[string]any{}
	}
	definitions := map[string]any{}
	for {
		var pending []string
		for name := range e.used {
			if _, done := definitions[name]; !done {
				pending = append(pending, name)
			}
		}
		if len(pending) == 0 {
			break
		}
		for _, name := range pending {
			definitions[name] = e.schema(e.defs[name])
		}
	}
	if len(definitions) > 0 {
		doc["definitions"] = definitions
	}
	doc["$schema"] = draft4
	return doc
}

// schema converts one schema node. What it drops (descriptions, defaults, vendor
// extensions) does not take part in validation; what it adds makes the schema say what the
// API server does:
//   - an object with a fixed set of properties refuses any other field
//     (additionalProperties false), unless it preserves unknown fields;
//   - an optional property may be null, which the API server reads as "not set";
//   - an embedded resource always has apiVersion, kind and metadata;
//   - x-kubernetes-int-or-string means an integer or a string.
func (e *expander) schema(node any) any {
	m, ok := node.(map[string]any)
	if !ok {
		return node // true/false, or the value of a keyword taken as is
	}
	if r, ok := m["$ref"].(string); ok {
		return e.ref(strings.TrimPrefix(r, openAPIRef))
	}
	// Kubernetes wraps a reference in a one-element allOf only to attach a description
	// or a default to it; neither matters here.
	if all, ok := m["allOf"].([]any); ok && len(all) == 1 && onlyAnnotations(m, "allOf") {
		if inner, ok := all[0].(map[string]any); ok && inner["$ref"] != nil {
			return e.schema(inner)
		}
	}

	out := map[string]any{}
	for k, v := range m {
		switch {
		case k == "description" || k == "default" || k == "example" || k == "nullable" ||
			strings.HasPrefix(k, "x-"):
		case k == "properties":
			required := map[string]bool{}
			for _, r := range asList(m["required"]) {
				if s, ok := r.(string); ok {
					required[s] = true
				}
			}
			props := map[string]any{}
			for name, p := range v.(map[string]any) {
				ps := e.schema(p)
				if !required[name] {
					ps = nullable(ps)
				}
				props[name] = ps
			}
			out[k] = props
		case k == "items" || k == "additionalProperties" || k == "not":
			out[k] = e.schema(v)
		case k == "allOf" || k == "anyOf" || k == "oneOf":
			var list []any
			for _, s := range asList(v) {
				list = append(list, e.schema(s))
			}
			out[k] = list
		default:
			out[k] = v
		}
	}

	if m["x-kubernetes-embedded-resource"] == true {
		props, _ := out["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
			out["properties"] = props
		}
		for _, name := range []string{"apiVersion", "kind"} {
			if props[name] == nil {
				props[name] = map[string]any{"type": []any{"string", "null"}}
			}
		}
		if props["metadata"] == nil {
			props["metadata"] = map[string]any{"type": []any{"object", "null"}}
		}
	}
	if m["x-kubernetes-int-or-string"] == true && m["type"] == nil && m["anyOf"] == nil && m["oneOf"] == nil {
		out["oneOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
	}
	if _, fixed := out["properties"]; fixed && m["additionalProperties"] == nil &&
		m["x-kubernetes-preserve-unknown-fields"] != true {
		out["additionalProperties"] = false
	}
	if m["nullable"] == true {
		return nullable(out)
	}
	return out
}

// nullable lets s also match null. It changes s in place: every schema it gets was built
// afresh by schema, so nothing else holds it.
func nullable(s any) any {
	m, ok := s.(map[string]any)
	if !ok {
		return s
	}
	null := map[string]any{"type": "null"}
	if _, isRef := m["$ref"]; isRef {
		return map[string]any{"anyOf": []any{null, m}}
	}
	switch t := m["type"].(type) {
	case string:
		m["type"] = []any{t, "null"}
	case []any:
		if !contains(t, "null") {
			m["type"] = append(append([]any{}, t...), "null")
		}
	case nil:
		for _, k := range []string{"oneOf", "anyOf"} {
			if list, ok := m[k].([]any); ok {
				m[k] = append(append([]any{}, list...), null)
				break
			}
		}
	}
	if enum, ok := m["enum"].([]any); ok && !contains(enum, nil) {
		m["enum"] = append(append([]any{}, enum...), nil)
	}
	return m
}

// onlyAnnotations tells whether m has no keyword besides keep that could constrain a value.
func onlyAnnotations(m map[string]any, keep string) bool {
	for k := range m {
		if k != keep && k != "description" && k != "default" && !strings.HasPrefix(k, "x-") {
			return false
		}
	}
	return true
}

// cyclicNames finds the definitions that reach themselves through $refs.
func cyclicNames(defs map[string]any) map[string]bool {
	edges := map[string][]string{}
	for name, def := range defs {
		edges[name] = refsIn(def, nil)
	}
	cyclic := map[string]bool{}
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, start := range names {
		seen := map[string]bool{}
		stack := append([]string{}, edges[start]...)
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if n == start {
				cyclic[start] = true
				break
			}
			if !seen[n] {
				seen[n] = true
				stack = append(stack, edges[n]...)
			}
		}
	}
	return cyclic
}

func refsIn(node any, acc []string) []string {
	switch v := node.(type) {
	case map[string]any:
		for k, child := range v {
			if r, ok := child.(string); ok && k == "$ref" {
				acc = append(acc, strings.TrimPrefix(r, openAPIRef))
			} else {
				acc = refsIn(child, acc)
			}
		}
	case []any:
		for _, child := range v {
			acc = refsIn(child, acc)
		}
	}
	return acc
}

func asList(v any) []any {
	list, _ := v.([]any)
	return list
}

func contains(list []any, want any) bool {
	for _, v := range list {
		if v == want {
			return true
		}
	}
	return false
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"

	"sigs.k8s.io/yaml"
)

const objectMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

// crd is the part of a CustomResourceDefinition that decides its objects' schemas.
type crd struct {
	Kind string `json:"kind"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Served bool   `json:"served"`
			Schema struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// crdSchemas makes a schema for every served version of every CustomResourceDefinition in
// files. The API server gives every custom object apiVersion, kind and a full ObjectMeta
// whatever the CRD's schema says of them, so the schema says the same.
func crdSchemas(defs map[string]any, files []string) ([]kindSchema, error) {
	var out []kindSchema
	for _, file := range files {
		docs, err := yamlDocuments(file)
		if err != nil {
			return nil, err
		}
		for i, doc := range docs {
			raw, err := yaml.YAMLToJSON(doc)
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", file, i+1, err)
			}
			var c crd
			if err := json.Unmarshal(raw, &c); err != nil || c.Kind != "CustomResourceDefinition" {
				continue
			}
			for _, v := range c.Spec.Versions {
				if !v.Served || v.Schema.OpenAPIV3Schema == nil {
					continue
				}
				e := newExpander(defs)
				root, _ := e.schema(v.Schema.OpenAPIV3Schema).(map[string]any)
				props, _ := root["properties"].(map[string]any)
				if props == nil {
					props = map[string]any{}
					root["properties"] = props
				}
				props["apiVersion"] = map[string]any{"type": []any{"string", "null"}}
				props["kind"] = map[string]any{"type": []any{"string", "null"}}
				props["metadata"] = nullable(e.ref(objectMeta))
				out = append(out, kindSchema{gvk{c.Spec.Group, v.Name, c.Spec.Names.Kind}, e.document(root)})
			}
		}
	}
	return out, nil
}

var separator = regexp.MustCompile(`^---\s*(#.*)?$`)

// yamlDocuments splits a YAML stream at its "---" lines.
func yamlDocuments(file string) ([][]byte, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if separator.Match(sc.Bytes()) {
			docs = append(docs, append([]byte{}, cur.Bytes()...))
			cur.Reset()
			continue
		}
		cur.Write(sc.Bytes())
		cur.WriteByte('\n')
	}
	docs = append(docs, cur.Bytes())
	return docs, sc.Err()
}

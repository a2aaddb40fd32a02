package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// gvk names one kind of one API version; group is "" for the core group.
type gvk struct{ group, version, kind string }

// loadOpenAPI reads every *.json OpenAPI v3 document in dir and returns the union of their
// component schemas by name, and which schema each kind is (from the
// x-kubernetes-group-version-kind extension). The documents repeat shared definitions
// such as DeleteOptions, each listing only its own group's kinds, hence the union.
func loadOpenAPI(dir string) (map[string]any, map[gvk]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		return nil, nil, fmt.Errorf("no OpenAPI documents in %s", dir)
	}
	sort.Strings(files)
	defs := map[string]any{}
	kinds := map[gvk]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		var doc struct {
			Components struct {
				Schemas map[string]map[string]any `json:"schemas"`
			} `json:"components"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		for name, s := range doc.Components.Schemas {
			defs[name] = s
			list, _ := s["x-kubernetes-group-version-kind"].([]any)
			for _, item := range list {
				m, _ := item.(map[string]any)
				g, _ := m["group"].(string)
				v, _ := m["version"].(string)
				k, _ := m["kind"].(string)
				if v != "" && k != "" {
					kinds[gvk{g, v, k}] = name
				}
			}
		}
	}
	return defs, kinds, nil
}

// kubernetesSchemas expands the schema of every kind Kubernetes serves.
func kubernetesSchemas(defs map[string]any, kinds map[gvk]string) []kindSchema {
	var out []kindSchema
	for k, name := range kinds {
		e := newExpander(defs)
		out = append(out, kindSchema{k, e.document(e.ref(name))})
	}
	return out
}

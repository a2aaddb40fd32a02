package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// kindSchema is the schema of one kind in one API version.
type kindSchema struct {
	gvk    gvk
	schema map[string]any
}

// path is where kubeconform's template {{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json
// looks for it: kubeconform takes the part of apiVersion before "/" as the group, so the
// core group's kinds ("v1") live in a folder named v1.
func (s kindSchema) path(dir string) string {
	group := s.gvk.group
	if group == "" {
		group = s.gvk.version
	}
	return filepath.Join(dir, group, strings.ToLower(s.gvk.kind)+"_"+s.gvk.version+".json")
}

func (s kindSchema) write(dir string) error {
	raw, err := json.Marshal(s.schema)
	if err != nil {
		return err
	}
	p := s.path(dir)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, raw, 0o644)
}

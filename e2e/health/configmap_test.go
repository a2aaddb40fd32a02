package health

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The argocd-cm patch people apply must carry the Lua that is tested, not an older copy.
const patch = "../../manifests/argocd/argocd-cm-patch.yaml"

var update = flag.Bool("update", false, "rewrite argocd-cm-patch.yaml from the health.lua files")

const patchHeader = `# The ciclo.dev health checks for Argo CD: merge into the argocd-cm ConfigMap
# (kubectl -n argocd patch configmap argocd-cm --patch-file manifests/argocd/argocd-cm-patch.yaml,
# or list it under patches: in the kustomization that installs Argo CD). See docs/gitops.md.
# Generated from health/ciclo.dev/<Kind>/health.lua by
# (cd e2e/health && go test ./... -update); a test fails when they differ.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
`

func key(kind string) string {
	return "resource.customizations.health.ciclo.dev_" + kind
}

// render writes the patch with each script as a literal block, byte for byte.
func render(t *testing.T) string {
	var b strings.Builder
	b.WriteString(patchHeader)
	for _, kind := range kinds {
		script := string(read(t, filepath.Join(checks, kind, "health.lua")))
		if !strings.HasSuffix(script, "\n") || strings.HasSuffix(script, "\n\n") {
			t.Fatalf("%s/health.lua must end with exactly one newline to survive a YAML literal block", kind)
		}
		b.WriteString("  " + key(kind) + ": |\n")
		for _, line := range strings.SplitAfter(strings.TrimSuffix(script, "\n"), "\n") {
			if strings.TrimSpace(line) == "" {
				b.WriteString("\n")
			} else {
				b.WriteString("    " + line)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestTheArgoCDConfigMapPatchCarriesExactlyTheTestedLua(t *testing.T) {
	if *update {
		if err := os.WriteFile(patch, []byte(render(t)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Read back as Argo CD will, so a quoting or indentation slip counts as a difference.
	var cm struct {
		Kind     string
		Metadata struct{ Name, Namespace string }
		Data     map[string]string
	}
	if err := yaml.Unmarshal(read(t, patch), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" || cm.Metadata.Namespace != "argocd" {
		t.Errorf("%s patches %s %s/%s, not the ConfigMap argocd/argocd-cm", patch, cm.Kind,
			cm.Metadata.Namespace, cm.Metadata.Name)
	}
	for _, kind := range kinds {
		want := string(read(t, filepath.Join(checks, kind, "health.lua")))
		got, ok := cm.Data[key(kind)]
		switch {
		case !ok:
			t.Errorf("%s has no %s", patch, key(kind))
		case got != want:
			t.Errorf("%s differs from %s/health.lua: run (cd e2e/health && go test ./... -update)", key(kind), kind)
		}
		delete(cm.Data, key(kind))
	}
	for k := range cm.Data {
		t.Errorf("%s has %s, which no health.lua backs", patch, k)
	}
}

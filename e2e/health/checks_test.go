package health

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Where the health checks live, laid out as Argo CD's resource_customizations:
// <group>/<Kind>/{health.lua, health_test.yaml, testdata/}.
const checks = "../../manifests/argocd/health/ciclo.dev"

// Every kind of the ciclo.dev API.
var kinds = []string{"Dataset", "ModelDeployment", "ModelVersion", "TrainingRun"}

// health_test.yaml, in the format of Argo CD's own resource_customizations tests.
type cases struct {
	Tests []struct {
		HealthStatus Status `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func casesOf(t *testing.T, kind string) cases {
	t.Helper()
	var c cases
	if err := yaml.UnmarshalStrict(read(t, filepath.Join(checks, kind, "health_test.yaml")), &c); err != nil {
		t.Fatalf("%s/health_test.yaml: %v", kind, err)
	}
	return c
}

func TestEachHealthCheckGivesTheExpectedStatusAndMessageForEverySample(t *testing.T) {
	for _, kind := range kinds {
		script := string(read(t, filepath.Join(checks, kind, "health.lua")))
		for _, c := range casesOf(t, kind).Tests {
			t.Run(kind+"/"+strings.TrimSuffix(filepath.Base(c.InputPath), ".yaml"), func(t *testing.T) {
				got, err := Evaluate(script, read(t, filepath.Join(checks, kind, c.InputPath)))
				if err != nil {
					t.Fatal(err)
				}
				// Exact, as Argo CD's own runner of these files compares.
				if got != c.HealthStatus {
					t.Errorf("got\n  %s: %q\nwant\n  %s: %q", got.Status, got.Message,
						c.HealthStatus.Status, c.HealthStatus.Message)
				}
			})
		}
	}
}

// A sample no test names checks nothing; and each kind must show that its check tells
// apart the states its controller can be in.
func TestEverySampleIsTestedAndEachKindCoversItsStates(t *testing.T) {
	reaches := map[string][]string{
		"Dataset":         {"Healthy", "Progressing", "Degraded", "Suspended"},
		"TrainingRun":     {"Healthy", "Progressing", "Degraded", "Suspended"},
		"ModelVersion":    {"Healthy", "Progressing", "Degraded"},
		"ModelDeployment": {"Healthy", "Progressing", "Degraded", "Suspended"},
	}
	for _, kind := range kinds {
		samples, err := filepath.Glob(filepath.Join(checks, kind, "testdata", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		tested := map[string]bool{}
		seen := map[string]bool{}
		for _, c := range casesOf(t, kind).Tests {
			tested[filepath.Join(checks, kind, c.InputPath)] = true
			seen[c.HealthStatus.Status] = true
		}
		for _, s := range samples {
			if !tested[s] {
				t.Errorf("%s is named by no test in %s/health_test.yaml", s, kind)
			}
		}
		for _, status := range reaches[kind] {
			if !seen[status] {
				t.Errorf("%s: no sample is expected to be %s", kind, status)
			}
		}
	}
	dirs, err := os.ReadDir(checks)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !slices.Contains(kinds, d.Name()) {
			t.Errorf("%s/%s is not a ciclo.dev kind", checks, d.Name())
		}
	}
}

// The sandbox must be as strict as Argo CD's, or a script that passes here could fail there.
func TestTheSandboxWithholdsTheLibrariesArgoCDWithholds(t *testing.T) {
	for _, call := range []string{`string.format("%d", 1)`, `math.floor(1.5)`, `io.write("x")`} {
		_, err := Evaluate(`local x = `+call+` return {status = "Healthy", message = ""}`, []byte("{}"))
		if err == nil {
			t.Errorf("%s ran; Argo CD gives health scripts no such library", call)
		}
	}
	if _, err := Evaluate(`return {status = "Fine", message = ""}`, []byte("{}")); err == nil {
		t.Error("a status Argo CD does not know was accepted")
	}
	if _, err := Evaluate(`while true do end`, []byte("{}")); err == nil {
		t.Error("a script that never ends was not stopped")
	}
}

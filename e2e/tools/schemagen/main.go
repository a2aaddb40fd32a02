// Command schemagen writes the JSON schemas kubeconform validates against, offline: one
// standalone file per kind and version, every $ref resolved, and strict, so that a field
// the API does not know is an error rather than silently dropped by the API server.
//
//	schemagen k8s OPENAPI_V3_DIR OUT_DIR
//	    every kind in Kubernetes' own OpenAPI v3 documents (api/openapi-spec/v3 of the
//	    k8s.io/kubernetes module)
//	schemagen crd OPENAPI_V3_DIR OUT_DIR FILE...
//	    every served version of every CustomResourceDefinition in the YAML files (other
//	    documents are skipped); OPENAPI_V3_DIR supplies ObjectMeta for metadata
//
// The layout is the one kubeconform reads with
//
//	-schema-location 'OUT_DIR/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'
//
// where Group is the API group, or "v1" for the core group (kubeconform's own reading of
// apiVersion "v1"), and ResourceKind is the kind in lower case.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: schemagen k8s OPENAPI_V3_DIR OUT_DIR
       schemagen crd OPENAPI_V3_DIR OUT_DIR FILE...`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 || (args[0] == "k8s" && len(args) != 3) || (args[0] == "crd" && len(args) < 4) {
		return fmt.Errorf("%s", usage)
	}
	defs, kinds, err := loadOpenAPI(args[1])
	if err != nil {
		return err
	}
	var schemas []kindSchema
	switch args[0] {
	case "k8s":
		schemas = kubernetesSchemas(defs, kinds)
	case "crd":
		schemas, err = crdSchemas(defs, args[3:])
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s", usage)
	}
	if len(schemas) == 0 {
		return fmt.Errorf("no kinds found")
	}
	for _, s := range schemas {
		if err := s.write(args[2]); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "schemagen: %d schemas written to %s\n", len(schemas), args[2])
	return nil
}

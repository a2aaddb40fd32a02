//go:build tools

// Package tools pins the Helm command that e2e/tools/build.sh compiles; building it from
// this module makes go.mod and go.sum alone decide its version and every dependency's.
package tools

import _ "helm.sh/helm/v4/cmd/helm"

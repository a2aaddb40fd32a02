//go:build tools

// Package tools pins the kubeconform command that e2e/tools/build.sh compiles. It is a
// module of its own, apart from Helm's, so neither tool's dependencies raise the other's.
package tools

import _ "github.com/yannh/kubeconform/cmd/kubeconform"

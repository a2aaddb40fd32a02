//go:build tools

// Package tools pins Flux's source-controller, which e2e/flux/build.sh compiles; building it from this
// module makes go.mod and go.sum alone decide its version and every dependency's.
package tools

import _ "github.com/fluxcd/source-controller"

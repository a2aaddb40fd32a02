//go:build tools

// Package tools pins the Kubernetes commands this module builds (the control plane, kubectl,
// and the node's kubelet and kube-proxy); the build script compiles them with `go build` from
// this module so the versions come from go.mod and go.sum alone.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)

// Command coredns is CoreDNS with only the plugins the local cluster's DNS uses: names of
// Services and pods from the API server, no forwarding (nothing outside the cluster's private
// network namespace is ever asked). upstream's own main (coredns.go) is the same two calls,
// with every plugin linked in.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order plugins handle a query in: upstream's (core/dnsserver/zdirectives.go) without the
// plugins left out.
func init() {
	dnsserver.Directives = []string{"ready", "health", "errors", "log", "loadbalance", "cache", "kubernetes"}
}

func main() { coremain.Run() }

// Command etcd is upstream etcd's server, built from the go.etcd.io/etcd/server/v3
// module pinned in go.mod. It exists as its own module so etcd's dependency pins never
// fight the ones Kubernetes needs.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

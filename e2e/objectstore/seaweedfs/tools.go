//go:build tools

// Package tools pins SeaweedFS's `weed` command, whose `server -s3` is the S3-compatible
// object store ciclo's tests and demo run on loopback.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"

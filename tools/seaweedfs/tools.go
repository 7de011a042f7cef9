//go:build tools

// Package tools records the upstream command this module builds: `weed`, SeaweedFS's one
// binary (master, volume server, filer, S3 gateway), the local platform's object store.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"

//go:build tools

// Package tools records the upstream command this module builds: metrics-server, which
// scrapes the kubelets' (here kwok's) resource metrics and serves metrics.k8s.io.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"

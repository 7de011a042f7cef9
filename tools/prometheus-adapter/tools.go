//go:build tools

// Package tools records the upstream command this module builds: prometheus-adapter's
// `adapter`, which serves custom.metrics.k8s.io from Prometheus queries.
package tools

import _ "sigs.k8s.io/prometheus-adapter/cmd/adapter"

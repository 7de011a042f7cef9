//go:build tools

// Package tools records the upstream command this module builds: Jaeger's all-in-one
// (collector with OTLP receivers, in-memory storage, query API in one process), the local
// platform's trace backend.
package tools

import _ "github.com/jaegertracing/jaeger/cmd/all-in-one"

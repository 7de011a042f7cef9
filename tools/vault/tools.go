//go:build tools

// Package tools records the upstream command this module builds: the Vault server and
// CLI, whose main package is the root of the github.com/hashicorp/vault module.
package tools

import _ "github.com/hashicorp/vault"

//go:build tools

// Package tools records the upstream command this module builds: the Kubeflow training
// operator, which reconciles PyTorchJob, TFJob and XGBoostJob into pods and Services.
package tools

import _ "github.com/kubeflow/training-operator/cmd/training-operator.v1"

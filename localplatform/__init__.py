"""The local platform for tests and the demo: a real Kubernetes control plane run as
processes (the way envtest does it), kwok nodes, a pod runner for the project's own
pods, and PostgreSQL/MLflow on loopback."""

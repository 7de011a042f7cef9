"""Security pieces shared by the operator and the platform: the restricted Pod Security
check (`pod_security`), and Vault access per ModelDeployment: the policy and role rendering
(`vault_access`, pure), the operator's Vault settings (`vault_settings`) and the hvac calls
(`vault_client`, the only I/O)."""

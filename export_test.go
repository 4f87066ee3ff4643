package agentbackend

// Unexported names the external tests (package agentbackend_test) check.
var (
	ValidSessionID      = validSessionID
	SandboxWorkspaceDir = sandboxWorkspaceDir
)

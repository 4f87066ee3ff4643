package agentbackend

import "github.com/agentbackend/agentbackend/internal/sessionid"

// Unexported names the external tests (package agentbackend_test) check.
var (
	DockerLabelManaged     = dockerLabelManaged
	DockerLabelSession     = dockerLabelSession
	DockerLabelRuntime     = dockerLabelRuntime
	RuntimeImageRepository = runtimeImageRepository
	ValidSessionID         = sessionid.Valid
	SandboxWorkspaceDir    = sandboxWorkspaceDir
)

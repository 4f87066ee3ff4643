module agentbackend.invalid/ci/pause

go 1.22

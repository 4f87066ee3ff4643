module github.com/agentbackend/agentbackend

go 1.26

require (
	github.com/google/btree v1.1.3
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.47.0
)

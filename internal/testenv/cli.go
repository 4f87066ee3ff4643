package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	cliOnce sync.Once
	cliDir  string
	cliPath string
	cliErr  error
)

// BuildCLI builds cmd/agent-backend with `go build` once per test process,
// for tests that run it as a user does, and returns the executable's
// path; AGENTBE_CLI names one built already (the attack suite's
// unprivileged run, whose user has no Go cache). Call RemoveCLI from
// TestMain once the tests are done.
func BuildCLI(t testing.TB) string {
	t.Helper()
	cliOnce.Do(func() {
		if cliPath = os.Getenv("AGENTBE_CLI"); cliPath != "" {
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			cliErr = err
			return
		}
		if cliDir, cliErr = os.MkdirTemp("", "agent-backend-cli-"); cliErr != nil {
			return
		}
		cliPath = filepath.Join(cliDir, "agent-backend")
		out, err := exec.Command(gobin, "build", "-o", cliPath, "github.com/agentbackend/agentbackend/cmd/agent-backend").CombinedOutput()
		if err != nil {
			cliErr = &exec.Error{Name: "go build: " + string(out), Err: err}
		}
	})
	if cliErr != nil {
		t.Fatalf("cannot build the agent-backend CLI: %v", cliErr)
	}
	return cliPath
}

// RemoveCLI deletes what BuildCLI built, if anything.
func RemoveCLI() {
	if cliDir != "" {
		os.RemoveAll(cliDir)
	}
}

package agentbackend_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// An interactive shell on a terminal runs each job in a process group of
// its own: Signal reaches the job in the foreground (as Ctrl-C would),
// and Kill ends the whole session, the jobs in the background included.
func TestDockerTerminalJobs(t *testing.T) {
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)
	running := func() string {
		res, err := b.Exec(ctx, `for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f"; echo; done 2>/dev/null | grep '^sleep 4[0-9]4' | sort`, nil)
		if err != nil && ab.ErrorCode(err) != ab.CodeExecFailed { // grep finds nothing: exit 1
			require.NoError(t, err)
		}
		return strings.TrimSpace(string(res.Stdout))
	}
	// waitRunning polls (boundedly) until the listed sleeps are want.
	waitRunning := func(want string) {
		t.Helper()
		got := ""
		for range 100 {
			if got = running(); got == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		require.Equal(t, want, got, "the jobs running")
	}

	p, err := b.Start(ctx, "sh -i", &ab.ExecOptions{Terminal: &ab.Terminal{}})
	require.NoError(t, err)
	_, err = p.Stdin().Write([]byte("sleep 4141 & sleep 4242\r"))
	require.NoError(t, err)
	waitRunning("sleep 4141 \nsleep 4242")

	require.NoError(t, p.Signal(os.Interrupt))
	waitRunning("sleep 4141")
	assert.Equal(t, ab.ProcessRunning, p.Info().State, "the interactive shell ignores the interrupt")

	require.NoError(t, p.Kill())
	_, err = p.Wait(ctx)
	assert.Equal(t, ab.CodeExecFailed, ab.ErrorCode(err), "Wait after Kill: %v", err)
	assert.Empty(t, running(), "a job in the background outlived Kill")
}

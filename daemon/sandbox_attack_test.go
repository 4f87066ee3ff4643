//go:build linux

package daemon_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/attacktest"
	"github.com/agentbackend/agentbackend/internal/proctest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// The sandbox guarantees hold for the daemon's SSH exec sessions too (see
// sandbox_attack_test.go in the root package for the attacks on
// LocalBackend): the same sandbox, environment and cleanup.

// attackDaemon starts a daemon with isolation iso (skipping bwrap when it
// is missing) and returns an exec function for its SSH sessions.
func attackDaemon(t *testing.T, iso ab.Isolation, network ab.Network) func(command string) string {
	t.Helper()
	if iso == ab.IsolationBwrap {
		testenv.NeedBwrap(t)
	}
	d, port := startDaemon(t, daemon.Config{Isolation: iso, Network: network, Shell: ab.ShellBash})
	c := sshClient(t, d, port, "")
	return func(command string) string {
		t.Helper()
		sess, err := c.NewSession()
		require.NoError(t, err)
		defer sess.Close()
		out, _ := sess.Output(command)
		return string(out)
	}
}

func TestDaemonAttackEnvironment(t *testing.T) {
	t.Setenv("AGENTBE_SECRET_KEY", "sk-host-secret")
	t.Setenv("AUTH_TOKEN", "daemon-token")
	for _, iso := range []ab.Isolation{ab.IsolationNone, ab.IsolationBwrap} {
		t.Run(string(iso), func(t *testing.T) {
			exec := attackDaemon(t, iso, "")
			env := exec("env")
			assert.Contains(t, env, "PATH=")
			assert.NotContains(t, env, "sk-host-secret")
			assert.NotContains(t, env, "daemon-token")
		})
	}
}

func TestDaemonAttackCapabilitiesAndNetwork(t *testing.T) {
	exec := attackDaemon(t, ab.IsolationBwrap, "")
	for line := range strings.SplitSeq(strings.TrimSpace(exec("grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status")), "\n") {
		assert.True(t, strings.HasSuffix(line, "\t0000000000000000"), line)
	}

	connect, reached := attacktest.HostService(t)
	assert.Empty(t, exec(connect), "a sandboxed session reached the host's loopback")
	assert.False(t, reached(false))
	host := attackDaemon(t, ab.IsolationBwrap, ab.NetworkHost)
	assert.Equal(t, "connected\n", host(connect))
	assert.True(t, reached(true))
}

// Closing a session ends everything its command started, however it
// detached.
func TestDaemonAttackLeftovers(t *testing.T) {
	for _, iso := range []ab.Isolation{ab.IsolationNone, ab.IsolationBwrap} {
		t.Run(string(iso), func(t *testing.T) {
			if iso == ab.IsolationBwrap {
				testenv.NeedBwrap(t)
			}
			d, port := startDaemon(t, daemon.Config{Isolation: iso})
			c := sshClient(t, d, port, "")
			mark := proctest.SleepArg()
			sess, err := c.NewSession()
			require.NoError(t, err)
			require.NoError(t, sess.Start("setsid sleep "+mark+" & (setsid sleep "+mark+" &) & sleep "+mark))
			proctest.WaitRunning(t, mark, 3)
			sess.Close()
			proctest.WaitGone(t, mark)
		})
	}
}

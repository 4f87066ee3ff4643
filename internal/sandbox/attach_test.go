//go:build linux

package sandbox

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbackend/agentbackend/internal/netproxy"
)

// closeOnce records that what an Attacher returned was closed.
type closeOnce struct {
	l      net.Listener
	wg     *sync.WaitGroup
	closed chan struct{}
}

func (c *closeOnce) Close() error {
	err := c.l.Close()
	c.wg.Wait()
	close(c.closed)
	return err
}

// An Attacher's listener is in the sandbox's network namespace, there
// before the command runs, and closed once the command is waited for.
func TestAttachListensInTheSandbox(t *testing.T) {
	if err := netproxy.CanListenIn(); err != nil {
		t.Skip(err)
	}
	bw := attackBwrap(t, BwrapConfig{})
	c := &closeOnce{wg: &sync.WaitGroup{}, closed: make(chan struct{})}
	attach := func(ns *os.File) (io.Closer, error) {
		l, err := netproxy.ListenIn(ns, 3128)
		if err != nil {
			return nil, err
		}
		c.l = l
		c.wg.Go(func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = io.WriteString(conn, "from the host\n")
				conn.Close()
			}
		})
		return c, nil
	}
	// bash's /dev/tcp: no retry, so the listener was there first.
	out, errOut, state := run(t, Spec{Shell: "/bin/bash", Root: t.TempDir(), Cwd: ".", Bwrap: bw, Env: BaseEnv(false, true),
		Attach: attach, Command: "exec 3<>/dev/tcp/127.0.0.1/3128 && cat <&3"})
	require.Equal(t, 0, ExitCode(state), errOut)
	assert.Equal(t, "from the host\n", out)
	select {
	case <-c.closed:
	default:
		t.Error("Wait returned before closing what the Attacher returned")
	}
}

// When the Attacher fails, the command never runs.
func TestAttachFailureStopsTheCommand(t *testing.T) {
	bw := attackBwrap(t, BwrapConfig{})
	root := t.TempDir()
	boom := errors.New("no proxy today")
	cmd := Command(Spec{Shell: "/bin/sh", Root: root, Cwd: ".", Bwrap: bw, Env: BaseEnv(false, true),
		Attach: func(*os.File) (io.Closer, error) { return nil, boom }, Command: "echo ran > ran"})
	p, err := Start(cmd, nil, nil)
	assert.Nil(t, p)
	require.ErrorIs(t, err, boom)
	_, err = os.Stat(filepath.Join(root, "ran"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the command ran although its network could not be attached")
}

// A command built with an Attacher and released unstarted leaks nothing.
func TestAttachRelease(t *testing.T) {
	bw := NewBwrap("/usr/bin/bwrap", BwrapConfig{})
	cmd := Command(Spec{Shell: "/bin/sh", Root: "/x", Cwd: ".", Bwrap: bw,
		Attach: func(*os.File) (io.Closer, error) { return nil, nil }, Command: "true"})
	_, pending := attachments.Load(cmd)
	require.True(t, pending)
	Release(cmd)
	_, pending = attachments.Load(cmd)
	assert.False(t, pending)
}

// Commands survive the attachment of others: the thread that enters a
// sandbox's namespace must not end, since bubblewrap dies with the thread
// that started it (--die-with-parent), whichever command that was.
func TestAttachKeepsOtherSandboxesAlive(t *testing.T) {
	if err := netproxy.CanListenIn(); err != nil {
		t.Skip(err)
	}
	bw := attackBwrap(t, BwrapConfig{})
	attach := func(ns *os.File) (io.Closer, error) { return netproxy.ListenIn(ns, 3128) }
	var wg sync.WaitGroup
	codes := make([]int, 24)
	for i := range codes {
		wg.Go(func() {
			_, _, state := run(t, Spec{Shell: "/bin/sh", Root: t.TempDir(), Cwd: ".", Bwrap: bw, Env: BaseEnv(false, true),
				Attach: attach, Command: "sleep 0.2; echo ok | cat"})
			codes[i] = ExitCode(state)
		})
	}
	wg.Wait()
	for i, c := range codes {
		assert.Equal(t, 0, c, "command %d was killed", i)
	}
}

//go:build unix

// Package attacktest holds what the sandbox attack tests of several
// packages share: a host service for commands to try to reach, a bwrap
// that misbehaves, and the cleanup of what a failed attack left running.
//
// # The attack suite
//
// The attack suite is every test whose name says Attack, Jail, Escape,
// Symlink or Leftover, in the root package, daemon, agentmcp,
// cmd/agent-backend, internal/sandbox and internal/pathjail: each attacks
// a containment promise the way a hostile agent would and asserts that
// its target stayed unread and unwritten. A new attack test takes such a
// name. CI runs the suite twice: as root (within `make test`) and as an
// unprivileged user (`.ci/attack 65534`: test binaries run under setpriv,
// with a TMPDIR of that user's), with AGENTBE_REQUIRE naming bwrap so that
// nothing skips silently. `make attack` does both on a developer's machine.
// What only root can set up (a cgroup leaf to put commands in, the Docker
// engine) skips in the unprivileged run, saying why.
package attacktest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentbackend/agentbackend/internal/proctest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// HostService listens on the host's 127.0.0.1 until the test ends and
// returns a bash command that connects to it (through /dev/tcp, which the
// dangerous-command check refuses) and prints "connected", and
// a function reporting whether a connection arrived (waiting up to ten
// seconds when want is true, a bound on a hang).
func HostService(t testing.TB) (connect string, reached func(want bool) bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && echo connected", ln.Addr().(*net.TCPAddr).Port), Accepting(t, ln)
}

// Accepting accepts (and closes) connections on ln until the test ends,
// when it closes ln, and returns a function reporting whether a
// connection arrived (waiting up to ten seconds when want is true, a bound
// on a hang).
func Accepting(t testing.TB, ln net.Listener) (reached func(want bool) bool) {
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan struct{}, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	return func(want bool) bool {
		wait := time.Duration(0)
		if want {
			wait = 10 * time.Second
		}
		select {
		case <-accepted:
			return true
		case <-time.After(wait):
			return false
		}
	}
}

// KillMarked kills the processes marked with mark (see proctest) that a
// failed test left behind.
func KillMarked(mark string) {
	for _, pid := range proctest.Find(mark) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// FakeBwrap writes, in a directory of its own, an executable "bwrap" that
// runs the real one with its arguments changed by the shell code filter
// (run for each argument $a, it appends what it keeps with
// `set -- "$@" ...`), and returns its path. It needs a working bwrap.
func FakeBwrap(t testing.TB, filter string) string {
	t.Helper()
	real := testenv.NeedBwrap(t)
	p := filepath.Join(t.TempDir(), "bwrap")
	script := "#!/bin/sh\nfor a; do shift; " + filter + "; done\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Package attacktest holds what the sandbox attack tests of several
// packages share: a host service for commands to try to reach, and the
// cleanup of what a failed attack left running.
package attacktest

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/agentbackend/agentbackend/internal/proctest"
)

// HostService listens on the host's 127.0.0.1 until the test ends and
// returns a bash command that connects to it and prints "connected", and
// a function reporting whether a connection arrived (waiting up to ten
// seconds when want is true, a bound on a hang).
func HostService(t testing.TB) (connect string, reached func(want bool) bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
	reached = func(want bool) bool {
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
	return fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && echo connected", ln.Addr().(*net.TCPAddr).Port), reached
}

// KillMarked kills the processes marked with mark (see proctest) that a
// failed test left behind.
func KillMarked(mark string) {
	for _, pid := range proctest.Find(mark) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Package proctest finds processes by a marker in their command line, so
// tests can prove that a command left nothing running behind it.
package proctest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SleepArg returns a unique argument for sleep(1) (a long duration with
// random decimals) that marks the processes of one test: "sleep <arg>" can
// then be found with Find.
func SleepArg() string {
	return fmt.Sprintf("%d.%06d", 5000+rand.IntN(4000), rand.IntN(1000000))
}

// Find returns the pids of the live (not zombie) processes whose command
// line contains marker as one argument.
func Find(marker string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !hasArg(cmdline, marker) {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && zombie(stat) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func hasArg(cmdline []byte, arg string) bool {
	for a := range bytes.SplitSeq(cmdline, []byte{0}) {
		if string(a) == arg {
			return true
		}
	}
	return false
}

// zombie reads the state field of /proc/<pid>/stat, which follows the
// parenthesised command name.
func zombie(stat []byte) bool {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// WaitGone fails t unless every process marked with marker is gone soon.
// SIGKILL is delivered asynchronously, so a process killed a moment ago may
// still be exiting; this waits up to ten seconds for it, which is a bound
// on a hang, not a timing assertion.
func WaitGone(t testing.TB, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := Find(marker)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes marked %q still running: %v", marker, pids)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitRunning waits until at least n processes marked with marker run, and
// fails t if they do not appear within ten seconds.
func WaitRunning(t testing.TB, marker string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(Find(marker)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("expected %d processes marked %q, found %v", n, marker, Find(marker))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Process is what WantEnded uses of an agentbackend.Process (proctest
// cannot import that package: its own tests use proctest).
type Process interface {
	ID() string
	Done() <-chan struct{}
}

// WantEnded checks processes that something (a backend's Close) ended: each
// must have ended already, and waitErr (its Wait's error) must satisfy ok.
func WantEnded[P Process](t testing.TB, procs []P, waitErr func(P) error, ok func(error) bool, by string) {
	t.Helper()
	for _, p := range procs {
		select {
		case <-p.Done():
		default:
			t.Errorf("%s runs after %s", p.ID(), by)
		}
		if err := waitErr(p); !ok(err) {
			t.Errorf("Wait of %s after %s: %v", p.ID(), by, err)
		}
	}
}

//go:build unix

package agentbackend

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbackend/agentbackend/internal/proctest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// newLocalBwrap returns a bubblewrap backend, or skips (fails when
// AGENTBE_REQUIRE names bwrap).
func newLocalBwrap(t *testing.T, cfg LocalConfig) *LocalBackend {
	t.Helper()
	testenv.NeedBwrap(t)
	cfg.Isolation = IsolationBwrap
	return newLocal(t, cfg)
}

func TestLocalBwrapIsChosenByAuto(t *testing.T) {
	testenv.NeedBwrap(t)
	b, err := NewLocal(LocalConfig{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Isolation() != IsolationBwrap {
		t.Errorf("auto with a working bwrap chose %s", b.Isolation())
	}
}

// What the sandbox hides and what it lets through.
func TestLocalBwrapContainment(t *testing.T) {
	localNoLeaks(t)
	b := newLocalBwrap(t, LocalConfig{})
	ctx := context.Background()

	outside := filepath.Join(t.TempDir(), "outside.txt")
	if err := os.WriteFile(outside, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostTmp, err := os.CreateTemp("", "agentbe-host-tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	hostTmp.Close()
	defer os.Remove(hostTmp.Name())

	for name, cmd := range map[string]string{
		"file outside the workspace": "cat " + outside,
		"host /tmp file":             "cat " + hostTmp.Name(),
		"host workspace path":        "ls " + b.RootDir(),
		"host /etc":                  "cat /etc/passwd",
		"host /root":                 "ls /root",
		"write to /usr":              "touch /usr/agentbe-sandbox-test",
	} {
		res, err := b.Exec(ctx, cmd, nil)
		if localWantCode(t, err, CodeExecFailed, name); res == nil || res.ExitCode == 0 {
			t.Errorf("%s: allowed: %+v", name, res)
		}
	}
	if _, err := os.Stat("/usr/agentbe-sandbox-test"); err == nil {
		os.Remove("/usr/agentbe-sandbox-test")
		t.Error("the sandbox wrote to the host's /usr")
	}
	// The sandbox's / is bwrap's own tmpfs: writable, thrown away, not the host's.
	if _, err := b.Exec(ctx, "touch /agentbe-sandbox-root-test", nil); err != nil {
		t.Errorf("writing to the sandbox's /: %v", err)
	}
	if _, err := os.Stat("/agentbe-sandbox-root-test"); err == nil {
		os.Remove("/agentbe-sandbox-root-test")
		t.Error("the sandbox wrote to the host's /")
	}

	res, err := b.Exec(ctx, `ls -A /tmp | wc -l; echo scratch > /tmp/x; cat /tmp/x; echo "$TMPDIR"; ls /`, nil)
	if err != nil || !strings.HasPrefix(string(res.Stdout), "0\nscratch\n/tmp\n") {
		t.Errorf("private /tmp: %q %v", res.Stdout, err)
	}
	if !strings.Contains(string(res.Stdout), "\nworkspace\n") {
		t.Errorf("root of the sandbox: %q", res.Stdout)
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), "x")); err == nil && localHostFileIs(filepath.Join(os.TempDir(), "x"), "scratch\n") {
		t.Error("the sandbox's /tmp is the host's")
	}

	// The workspace is read-write, and what is written shows on the host.
	res, err = b.Exec(ctx, `mkdir -p made/here && echo inside > made/here/f; echo "$HOME"; pwd; ls /usr/bin/env`, nil)
	if err != nil || string(res.Stdout) != "/workspace\n/workspace\n/usr/bin/env\n" {
		t.Errorf("workspace: %q %v", res.Stdout, err)
	}
	localWantFile(t, filepath.Join(b.RootDir(), "made/here/f"), "inside\n")
}

func localHostFileIs(path, content string) bool {
	data, err := os.ReadFile(path)
	return err == nil && string(data) == content
}

// Processes that leave the command's process group (setsid) are still
// killed: they are in the sandbox's pid namespace.
func TestLocalBwrapKillsEscapedProcesses(t *testing.T) {
	b := newLocalBwrap(t, LocalConfig{})
	mark := proctest.SleepArg()
	res, err := b.Exec(context.Background(), "setsid sleep "+mark+" & echo ok", nil)
	if err != nil || string(res.Stdout) != "ok\n" {
		t.Errorf("%q %v", res.Stdout, err)
	}
	proctest.WaitGone(t, mark)

	_, err = b.Exec(context.Background(), "setsid sleep "+mark+" & sleep "+mark,
		&ExecOptions{Timeout: 300 * time.Millisecond})
	localWantCode(t, err, CodeExecFailed, "timeout")
	proctest.WaitGone(t, mark)
}

// SandboxReadOnly adds host paths, read-only.
func TestLocalBwrapSandboxReadOnly(t *testing.T) {
	extra := t.TempDir()
	if err := os.WriteFile(filepath.Join(extra, "tool.txt"), []byte("tool"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newLocalBwrap(t, LocalConfig{SandboxReadOnly: []string{extra, "/no/such/path"}})
	ctx := context.Background()
	res, err := b.Exec(ctx, "cat "+extra+"/tool.txt", nil)
	if err != nil || string(res.Stdout) != "tool" {
		t.Errorf("extra path: %q %v", res.Stdout, err)
	}
	if _, err := b.Exec(ctx, "touch "+extra+"/new", nil); err == nil {
		t.Error("an extra path is writable")
	}
	// Debian's awk is a link through /etc/alternatives, absent by default.
	if target, err := os.Readlink("/usr/bin/awk"); err == nil && strings.HasPrefix(target, "/etc/alternatives/") {
		plain := newLocalBwrap(t, LocalConfig{})
		if _, err := plain.Exec(ctx, "echo x | awk '{print}'", nil); err == nil {
			t.Log("awk works without /etc/alternatives here")
		}
		alt := newLocalBwrap(t, LocalConfig{SandboxReadOnly: []string{"/etc/alternatives"}})
		if res, err := alt.Exec(ctx, "echo x | awk '{print $1}'", nil); err != nil || string(res.Stdout) != "x\n" {
			t.Errorf("awk with /etc/alternatives: %q %v", res.Stdout, err)
		}
	}
}

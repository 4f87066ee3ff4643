package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/wsnet"
)

// sshClient connects a plain SSH client to the daemon's WS /ssh.
func sshClient(t *testing.T, d *daemon.Daemon, port int, token string) *ssh.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := wsnet.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/ssh?token=%s", port, token), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(ws, "daemon", &ssh.ClientConfig{
		User: "anyone", HostKeyCallback: ssh.FixedHostKey(d.HostKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := ssh.NewClient(conn, chans, reqs)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExecSession(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: ab.IsolationNone})
	c := sshClient(t, d, port, "tok")
	sess, _ := c.NewSession()
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errOut
	err := sess.Run(`printf '%s|%s|%s|' "$HOME" "$PWD" "$TERM"; pwd; echo oops >&2; exit 5`)
	var ee *ssh.ExitError
	if !errorsAs(err, &ee) || ee.ExitStatus() != 5 {
		t.Fatalf("exit: %v", err)
	}
	root := d.Backend().RootDir()
	if want := root + "|" + root + "|xterm-256color|" + root + "\n"; out.String() != want || errOut.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q, want %q", out.String(), errOut.String(), want)
	}
	// The daemon's credentials do not reach commands.
	t.Setenv("AUTH_TOKEN", "leak")
	d2, port2 := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	sess, _ = sshClient(t, d2, port2, "").NewSession()
	got, _ := sess.Output(`echo "[$AUTH_TOKEN]"`)
	if string(got) != "[]\n" {
		t.Errorf("AUTH_TOKEN reached the command: %q", got)
	}
}

// TestSessionKillsProcessGroup: closing the channel kills the command and
// everything it started.
func TestSessionKillsProcessGroup(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	c := sshClient(t, d, port, "")
	sess, _ := c.NewSession()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Start("sleep 60 & echo $!; wait"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	sess.Close()
	waitGone(t, pid)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSessionSignal(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	sess, _ := sshClient(t, d, port, "").NewSession()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Start(`trap 'echo got-term; exit 7' TERM; echo ready; sleep 30 & wait`); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, _ := r.ReadString('\n'); line != "ready\n" {
		t.Fatalf("got %q", line)
	}
	if err := sess.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	err := sess.Wait()
	var ee *ssh.ExitError
	if !errorsAs(err, &ee) || ee.ExitStatus() != 7 || string(rest) != "got-term\n" {
		t.Errorf("after SIGTERM: %v, output %q", err, rest)
	}
}

func TestShellWithPTY(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	sess, _ := sshClient(t, d, port, "").NewSession()
	if err := sess.RequestPty("xterm", 40, 100, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	var out bytes.Buffer
	sess.Stdout = &out
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(stdin, "tty; stty size; echo TERM=$TERM; exit 3\n")
	err := sess.Wait()
	var ee *ssh.ExitError
	if !errorsAs(err, &ee) || ee.ExitStatus() != 3 {
		t.Errorf("shell exit: %v", err)
	}
	s := out.String()
	if !strings.Contains(s, "/dev/pts/") || !strings.Contains(s, "40 100") || !strings.Contains(s, "TERM=xterm") {
		t.Errorf("terminal session output %q", s)
	}
}

func TestSessionLimits(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone, MaxSessionsPerConn: 2, MaxExecsPerConn: 1})
	c := sshClient(t, d, port, "")
	s1, err1 := c.NewSession()
	s2, err2 := c.NewSession()
	_, err3 := c.NewSession()
	if err1 != nil || err2 != nil || err3 == nil {
		t.Fatalf("sessions: %v %v %v (want the third refused)", err1, err2, err3)
	}
	start := time.Now()
	done := make(chan error, 2)
	go func() { done <- s1.Run("sleep 0.3") }()
	go func() { done <- s2.Run("sleep 0.3") }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 550*time.Millisecond {
		t.Errorf("two commands with MaxExecsPerConn 1 took %v: they ran at once", el)
	}
}

// TestSFTPJail: traversal through SFTP cannot reach outside the workspace:
// ".." stops at the root, absolute paths outside it are taken as inside,
// and symbolic links leading out are refused for every operation.
func TestSFTPJail(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("top secret"), 0o600)
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	root := d.Backend().RootDir()
	os.Symlink(outside, filepath.Join(root, "link-out"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "secret-link"))
	os.WriteFile(filepath.Join(root, "inside.txt"), []byte("inside"), 0o644)
	sc, err := sftp.NewClient(sshClient(t, d, port, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	rel, _ := filepath.Rel(root, filepath.Join(outside, "secret"))
	read := func(p string) (string, error) {
		f, err := sc.Open(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		return string(b), err
	}
	for _, p := range []string{"../secret", rel, "/../../" + rel, outside + "/secret", root + "/../" + filepath.Base(outside) + "/secret",
		"link-out/secret", "secret-link", root + "/link-out/secret"} {
		if got, err := read(p); err == nil || strings.Contains(got, "secret") {
			t.Errorf("read %q: %q, %v — want refused", p, got, err)
		}
	}
	if got, err := read("../../inside.txt"); err != nil || got != "inside" {
		t.Errorf(`".." should stop at the root: %q %v`, got, err)
	}
	if _, err := sc.Create("link-out/planted"); err == nil {
		t.Error("create through a link out succeeded")
	}
	if err := sc.Rename("inside.txt", "link-out/moved"); err == nil {
		t.Error("rename through a link out succeeded")
	}
	if err := sc.Mkdir("link-out/dir"); err == nil {
		t.Error("mkdir through a link out succeeded")
	}
	if _, err := sc.ReadDir("link-out"); err == nil {
		t.Error("listing through a link out succeeded")
	}
	if err := sc.Remove("link-out/secret"); err == nil {
		t.Error("remove through a link out succeeded")
	}
	if err := sc.Symlink("/etc", "planted"); err == nil {
		t.Error("SYMLINK is served")
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("the outside file was touched: %v", err)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("outside directory changed: %v", entries)
	}
	// And RemoteBackend reports such a link as an escape.
	b := remoteFor(t, d, port, ab.RemoteConfig{})
	_, err = b.Read(context.Background(), "secret-link")
	if ab.ErrorCode(err) != ab.CodePathEscape {
		t.Errorf("RemoteBackend read through a link out: %v, want PATH_ESCAPE_ATTEMPT", err)
	}
}

// TestSFTPAttackHostilePaths: the SFTP requests a hostile client adds to
// TestSFTPJail's: metadata, mode, size, times and hard links through a
// link out of the workspace, and paths no file system has (NUL, 64 KiB).
// The file outside stays unread and unchanged.
func TestSFTPAttackHostilePaths(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("top secret"), 0o600))
	before, err := os.Stat(secret)
	require.NoError(t, err)
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	root := d.Backend().RootDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "link-out")))
	require.NoError(t, os.Symlink(secret, filepath.Join(root, "secret-link")))
	require.NoError(t, os.WriteFile(filepath.Join(root, "inside.txt"), []byte("inside"), 0o644))
	sc, err := sftp.NewClient(sshClient(t, d, port, ""))
	require.NoError(t, err)
	defer sc.Close()

	for _, p := range []string{"link-out/secret", "secret-link", root + "/link-out/secret"} {
		_, err := sc.Stat(p)
		assert.Error(t, err, "stat %s", p)
		assert.Error(t, sc.Chmod(p, 0o777), "chmod %s", p)
		assert.Error(t, sc.Truncate(p, 0), "truncate %s", p)
		f, err := sc.OpenFile(p, os.O_WRONLY|os.O_TRUNC)
		if err == nil {
			f.Close()
			t.Errorf("open %s for writing succeeded", p)
		}
		_ = sc.Chtimes(p, time.Unix(0, 0), time.Unix(0, 0)) // ignored, as the specification allows: the time is checked below
		if real, err := sc.RealPath(p); err == nil {
			assert.NotContains(t, real, outside, "realpath %s told the outside path", p)
		}
	}
	assert.Error(t, sc.Link(filepath.Join(root, "link-out/secret"), "hard"), "LINK is served")
	assert.Error(t, sc.Link("inside.txt", "link-out/hard"), "LINK is served")
	assert.Error(t, sc.PosixRename("inside.txt", "link-out/moved"), "posix-rename through a link out")
	// A NUL inside a name, and a name longer than the file system takes,
	// are refused; a NUL in a name that ".." removes resolves inside the
	// workspace (".." stops at its root), which is all the jail promises.
	for _, p := range []string{"in\x00side.txt", strings.Repeat("n", 300)} {
		_, err = sc.Create(p)
		assert.Error(t, err, "create of %.20q", p)
	}
	if f, err := sc.Create("inside.txt\x00/../../" + secret); err == nil {
		f.Close()
	}
	after, err := os.Stat(secret)
	require.NoError(t, err)
	assert.Equal(t, before.Mode(), after.Mode(), "the outside file's mode changed")
	assert.Equal(t, before.ModTime(), after.ModTime(), "the outside file's time changed")
	data, err := os.ReadFile(secret)
	require.NoError(t, err)
	assert.Equal(t, "top secret", string(data))
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "something was created outside")
}

package daemon_test

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/jailtest"
	"github.com/agentbackend/agentbackend/internal/sshext"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// Scopes through the daemon: a RemoteBackend's scope (sessions jailed with
// sshext.ScopeRequest), the static scope (--scopePath) over SFTP, exec
// and MCP, and X-Scope-Path over MCP, each attacked through the links of
// jailtest.NewWorkspace, under bubblewrap where commands are attacked too.

// isolation returns bwrap when this host has it (failing when
// AGENTBE_REQUIRE names it and it is missing), else none.
func isolation(t *testing.T) ab.Isolation {
	if _, err := ab.NewLocal(ab.LocalConfig{RootDir: t.TempDir(), Isolation: ab.IsolationBwrap}); err == nil {
		return ab.IsolationBwrap
	}
	if testenv.Required("bwrap") {
		testenv.NeedBwrap(t)
	}
	return ab.IsolationNone
}

// logRecords is a slog handler that keeps the messages it is given.
type logRecords struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}

func (l *logRecords) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

func TestScopeJailRemote(t *testing.T) {
	iso := isolation(t)
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: iso})
	w := jailtest.NewWorkspace(t, d.RootDir())
	logs := &logRecords{}
	rb := remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "tok", Logger: slog.New(logs)})
	ctx := context.Background()
	alice, err := rb.Scope("users/alice", nil)
	require.NoError(t, err)
	defer alice.Close()
	for _, via := range jailtest.Vias {
		t.Run(strings.ReplaceAll(via, "/", "_"), func(t *testing.T) { jailtest.Attack(t, ctx, alice, via, w) })
	}
	t.Run("Listings", func(t *testing.T) { jailtest.Listings(t, ctx, alice, w) })
	assert.Zero(t, logs.count("cannot jail"), "this daemon refused to jail a scope")

	// A nested scope is jailed beneath its parent: a link to the parent
	// leads out of it.
	nest, err := alice.Scope("d", nil)
	require.NoError(t, err)
	defer nest.Close()
	_, err = nest.Read(ctx, "../own.txt")
	jailtest.Refused(t, err, w, "nested Read of ..")
	jailtest.Attack(t, ctx, nest, "../up/bob", w)

	if iso != ab.IsolationBwrap {
		return
	}
	// Commands of the scope see only the scope, mounted at its host path.
	for _, cmd := range []string{"cat ../bob/secret", "ls -a ..; ls -a ../..", "cat up/bob/secret", "cat c1/secret abs/secret", "pwd"} {
		res, _ := alice.Exec(ctx, cmd, nil)
		require.NotNil(t, res, cmd)
		out := string(res.Stdout) + string(res.Stderr)
		assert.NotContains(t, out, w.Secret(), "%q read the sibling's secret", cmd)
		for line := range strings.Lines(out) {
			assert.NotContains(t, []string{"bob\n", "secret\n"}, line, "%q saw the sibling", cmd)
		}
		if cmd == "pwd" {
			assert.Equal(t, alice.RootDir()+"\n", out)
		}
	}
	p, err := alice.Start(ctx, "cat ../bob/secret up/bob/secret; ls -a ..", nil)
	require.NoError(t, err)
	res, _ := p.Wait(ctx)
	require.NotNil(t, res)
	assert.NotContains(t, string(res.Stdout)+string(res.Stderr), w.Secret())
	w.Untouched(t)
}

// TestScopeJailStaticScope: a daemon started with a scope jails SFTP,
// search, exec and MCP there.
func TestScopeJailStaticScope(t *testing.T) {
	iso := isolation(t)
	root := t.TempDir()
	w := jailtest.NewWorkspace(t, root)
	d, port := startDaemon(t, daemon.Config{RootDir: root, ScopePath: "users/alice", Isolation: iso})
	ctx := context.Background()
	// A client rooted at the scope: its paths name the scope's directory.
	rb := remoteFor(t, d, port, ab.RemoteConfig{RootDir: filepath.Join(d.RootDir(), "users/alice")})
	for _, via := range jailtest.Vias {
		t.Run(strings.ReplaceAll(via, "/", "_"), func(t *testing.T) { jailtest.Attack(t, ctx, rb, via, w) })
	}
	t.Run("Listings", func(t *testing.T) { jailtest.Listings(t, ctx, rb, w) })
	// A client rooted at the workspace: a path outside the scope is taken
	// as relative to the scope (the path rule), never as the sibling's.
	top := remoteFor(t, d, port, ab.RemoteConfig{})
	_, err := top.Read(ctx, "users/bob/secret")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	data, err := top.Read(ctx, "users/alice/own.txt")
	require.NoError(t, err)
	assert.Equal(t, "alice's own\n", string(data))
	if iso == ab.IsolationBwrap {
		// Commands run in the scope, mounted at its host path: the only
		// part of the workspace in the sandbox. (A client rooted at the
		// workspace changes to the workspace's path, an empty directory
		// there.)
		for _, c := range []*ab.RemoteBackend{rb, top} {
			res, _ := c.Exec(ctx, "pwd; ls -a .. ../..; cat ../bob/secret up/bob/secret "+w.Root+"/users/bob/secret", nil)
			require.NotNil(t, res)
			out := string(res.Stdout) + string(res.Stderr)
			assert.True(t, strings.HasPrefix(out, c.RootDir()+"\n"), out)
			assert.NotContains(t, out, w.Secret())
			assert.NotContains(t, out, "bob\n")
		}
	}
	cs, err := agentmcp.ConnectRemote(ctx, top, "")
	require.NoError(t, err)
	defer cs.Close()
	jailtest.AttackMCP(t, cs, w, iso == ab.IsolationBwrap)
}

// TestScopeJailMCPHeader: POST /mcp with X-Scope-Path works in a scope
// jailed like any LocalBackend scope.
func TestScopeJailMCPHeader(t *testing.T) {
	iso := isolation(t)
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: iso})
	w := jailtest.NewWorkspace(t, d.RootDir())
	rb := remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "tok"})
	cs, err := agentmcp.ConnectRemote(context.Background(), rb, "users/alice")
	require.NoError(t, err)
	defer cs.Close()
	jailtest.AttackMCP(t, cs, w, iso == ab.IsolationBwrap)
}

// TestScopeJailRemoteRace flips a directory of the scope and a link to the
// sibling's directory on the daemon host while the scope reads and writes
// through it over SFTP: never the sibling's secret.
func TestScopeJailRemoteRace(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	w := jailtest.NewWorkspace(t, d.RootDir())
	rb := remoteFor(t, d, port, ab.RemoteConfig{})
	ctx := context.Background()
	alice, err := rb.Scope("users/alice", nil)
	require.NoError(t, err)
	defer alice.Close()
	require.NoError(t, alice.Write(ctx, "flip/secret", []byte("alice")))
	stop := jailtest.Flip(t, filepath.Join(d.RootDir(), "users/alice/flip"), filepath.Join(d.RootDir(), "users/alice/bob"))
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		data, err := alice.Read(ctx, "flip/secret")
		if err == nil {
			assert.Equal(t, "alice", string(data))
		} else {
			assert.NotContains(t, err.Error(), w.Secret())
		}
		_ = alice.Write(ctx, "flip/secret", []byte("alice"))
	}
	stop()
	w.Untouched(t)
}

// TestScopeJailReferenceDaemon: the reference daemon refuses
// sshext.ScopeRequest, so a RemoteBackend's scopes fall back to the path
// rule: they work, ".." is still refused, and the backend says once, in
// its log, that its scopes are not jails.
func TestScopeJailReferenceDaemon(t *testing.T) {
	ref := startRefDaemon(t, "tok")
	logs := &logRecords{}
	rb := remoteOn(t, ref.port, ref.root, "tok", ab.RemoteConfig{HostKey: ref.hostKey, Logger: slog.New(logs)})
	ctx := context.Background()
	sc, err := rb.Scope("tenants/one", nil)
	require.NoError(t, err)
	defer sc.Close()
	require.NoError(t, sc.Write(ctx, "a.txt", []byte("scoped")))
	data, err := rb.Read(ctx, "tenants/one/a.txt")
	require.NoError(t, err)
	assert.Equal(t, "scoped", string(data))
	res, err := sc.Exec(ctx, "cat a.txt", nil)
	require.NoError(t, err)
	assert.Equal(t, "scoped", string(res.Stdout))
	_, err = sc.Read(ctx, "../../x")
	assert.ErrorIs(t, err, ab.ErrPathEscape)
	grep, err := ab.Grep(ctx, sc, ab.GrepOptions{Pattern: "scoped"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a.txt"}, grep.Files)
	assert.Equal(t, 1, logs.count("cannot jail scopes"), "the fallback must be logged, once")
}

// TestScopeJailAttackRequests: a hostile client speaks the scope request
// itself: levels that climb, absolute or unclean levels, a level that is a
// link out of its parent, NULs; a second request after the first (it may
// only narrow), and one after the session's program started (refused).
// Nothing reaches users/bob from a session scoped to users/alice.
func TestScopeJailAttackRequests(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	w := jailtest.NewWorkspace(t, d.RootDir())
	c := sshClient(t, d, port, "")
	type levels struct{ Levels string }
	session := func(t *testing.T, reqs ...string) (*ssh.Session, []bool) {
		t.Helper()
		sess, err := c.NewSession()
		require.NoError(t, err)
		t.Cleanup(func() { sess.Close() })
		var oks []bool
		for _, l := range reqs {
			ok, err := sess.SendRequest(sshext.ScopeRequest, true, ssh.Marshal(levels{l}))
			require.NoError(t, err)
			oks = append(oks, ok)
		}
		return sess, oks
	}
	for _, l := range []string{"..", "../users", "users/../..", "/users/alice", "users/alice/", "users//alice", "users/./alice",
		"users\x00..", "users\x00../bob", "", "\x00", "users/alice/up", "users/alice/bob", "users/alice/abs", "users/alice\x00up"} {
		sess, oks := session(t, l)
		if !oks[0] {
			continue // refused: the session keeps the whole workspace, which is this client's anyway
		}
		// Granted (the directory is opened at each operation): the
		// command fails, or runs beneath the workspace and, for a scope
		// that names alice, sees nothing of bob's.
		var out strings.Builder
		sess.Stdout = &out
		if sess.Run("cat secret ../secret bob/secret users/bob/secret 2>/dev/null; pwd") != nil {
			continue
		}
		if strings.Contains(l, "alice") {
			assert.NotContains(t, out.String(), w.Secret(), "scope %q reached bob's secret", l)
		}
		assert.True(t, strings.HasPrefix(lastLine(out.String()), d.RootDir()), "scope %q runs outside the workspace: %q", l, out.String())
	}
	// A second request narrows; a link up out of the first is no way back.
	sess, _ := session(t, "users/alice", "up")
	var out strings.Builder
	sess.Stdout = &out
	_ = sess.Run("cat ../bob/secret up/bob/secret bob/secret 2>/dev/null; pwd")
	assert.NotContains(t, out.String(), w.Secret())
	// After the program started, a scope request is refused.
	sess, _ = session(t)
	sess.Stdout = &out
	in, err := sess.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, sess.Start("read line; cat \"$line\""))
	ok, err := sess.SendRequest(sshext.ScopeRequest, true, ssh.Marshal(levels{"users/alice"}))
	require.NoError(t, err)
	assert.False(t, ok, "a scope request after the program started was granted")
	in.Close()
	_ = sess.Wait()
	w.Untouched(t)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
)

// Interoperability with agent-backend 0.13.2 in both directions: the same
// client against the reference daemon and against this one must see the
// same results.

// refStep is one line of the reference client's transcript.
type refStep struct {
	Step  string `json:"step"`
	OK    bool   `json:"ok"`
	Code  string `json:"code,omitempty"`
	Value any    `json:"value,omitempty"`
}

// refTranscript runs testdata/refclient.mjs against a daemon. Messages
// are dropped: they carry OS error texts, which differ between Node and Go.
func refTranscript(t *testing.T, modules string, port int, token, root string) []refStep {
	t.Helper()
	out := runNode(t, filepath.Join("testdata", "refclient.mjs"), modules, "127.0.0.1", fmt.Sprint(port), token, root)
	var steps []refStep
	for line := range strings.Lines(string(out)) {
		var s refStep
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("transcript line %q: %v", line, err)
		}
		steps = append(steps, s)
	}
	if len(steps) < 40 {
		t.Fatalf("short transcript (%d steps):\n%s", len(steps), out)
	}
	return steps
}

// TestInteropReferenceClient: the reference RemoteFilesystemBackend gets the
// same answers from this daemon as from its own.
func TestInteropReferenceClient(t *testing.T) {
	modules := npmPeers(t)
	ref := startRefDaemon(t, "tok")
	want := refTranscript(t, modules, ref.port, "tok", ref.root)

	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: ab.IsolationNone})
	got := refTranscript(t, modules, port, "tok", d.RootDir())
	compareSteps(t, got, want)
}

// TestInteropReferenceClientBwrap: the same under bubblewrap, where the
// workspace is mounted at its host path so the client's `cd "/root/..."`
// works inside the sandbox.
func TestInteropReferenceClientBwrap(t *testing.T) {
	modules := npmPeers(t)
	ref := startRefDaemon(t, "tok")
	want := refTranscript(t, modules, ref.port, "tok", ref.root)
	if _, err := ab.NewLocal(ab.LocalConfig{RootDir: t.TempDir(), Isolation: ab.IsolationBwrap}); err != nil {
		t.Skipf("bwrap unavailable: %v", err)
	}
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: ab.IsolationBwrap})
	got := refTranscript(t, modules, port, "tok", d.RootDir())
	compareSteps(t, got, want)
}

func compareSteps(t *testing.T, got, want []refStep) {
	t.Helper()
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("missing step %+v", want[i])
		case i >= len(want):
			t.Errorf("extra step %+v", got[i])
		case !reflect.DeepEqual(got[i], want[i]):
			t.Errorf("step %q:\n  this daemon:      %+v\n  reference daemon: %+v", want[i].Step, got[i], want[i])
		}
	}
}

// TestInteropRemoteBackend: this module's RemoteBackend runs every
// FileBackend operation and Exec against the reference daemon and against
// this daemon, with equal results.
func TestInteropRemoteBackend(t *testing.T) {
	ref := startRefDaemon(t, "tok")
	rb := remoteOn(t, ref.port, ref.root, "tok", ab.RemoteConfig{HostKey: ref.hostKey})
	want := remoteTranscript(t, rb)
	t.Logf("reference transcript:\n%s", strings.Join(want, "\n"))

	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: ab.IsolationNone})
	ob := remoteOn(t, port, d.RootDir(), "tok", ab.RemoteConfig{HostKey: d.HostKey()})
	got := remoteTranscript(t, ob)
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("missing step %s", want[i])
		case i >= len(want):
			t.Errorf("extra step %s", got[i])
		case got[i] != want[i]:
			t.Errorf("this daemon:      %s\nreference daemon: %s", got[i], want[i])
		}
	}
}

func remoteOn(t *testing.T, port int, root, token string, cfg ab.RemoteConfig) *ab.RemoteBackend {
	t.Helper()
	cfg.Host, cfg.Port, cfg.RootDir, cfg.AuthToken = "127.0.0.1", port, root, token
	b, err := ab.NewRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// remoteTranscript runs a fixed sequence of every operation and describes
// each outcome in one line, with the root replaced by <root>.
func remoteTranscript(t *testing.T, b ab.FileBackend) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := b.RootDir()
	var lines []string
	rec := func(step string, o outcome) {
		v, err := o.v, o.err
		s := fmt.Sprintf("%s: %v", step, v)
		if err != nil {
			s = fmt.Sprintf("%s: error %s notexist=%v", step, ab.ErrorCode(err), errors.Is(err, fs.ErrNotExist))
		}
		lines = append(lines, strings.ReplaceAll(s, root, "<root>"))
	}
	all := make([]byte, 1024)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	read := func(p string) (string, error) { d, err := b.Read(ctx, p); return string(d), err }
	same := func(p string, want []byte) (bool, error) { d, err := b.Read(ctx, p); return bytes.Equal(d, want), err }
	stat := func(p string) (string, error) {
		fi, err := b.Stat(ctx, p)
		if fi.IsDir {
			return fmt.Sprintf("%s dir=%v", fi.Name, fi.IsDir), err
		}
		return fmt.Sprintf("%s size=%d dir=%v perm=%v", fi.Name, fi.Size, fi.IsDir, fi.Mode.Perm()), err
	}
	exec := func(cmd string, o *ab.ExecOptions) (string, error) {
		res, err := b.Exec(ctx, cmd, o)
		if res == nil {
			return "", err
		}
		return fmt.Sprintf("exit=%d out=%q err=%q", res.ExitCode, res.Stdout, res.Stderr), err
	}

	rec("write", errOnly(b.Write(ctx, "notes/a.txt", []byte("hello\n"))))
	rec("read", of(read("notes/a.txt")))
	rec("write binary", errOnly(b.Write(ctx, "bin/all.bin", all)))
	rec("read binary", of(same("bin/all.bin", all)))
	rec("write 1 MiB", errOnly(b.Write(ctx, "big.bin", big)))
	rec("read 1 MiB", of(same("big.bin", big)))
	rec("overwrite", errOnly(b.Write(ctx, "notes/a.txt", []byte("short"))))
	rec("read overwritten", of(read("notes/a.txt")))
	rec("read absolute", of(read(root+"/notes/a.txt")))
	rec("read missing", of(read("missing")))
	rec("read dir", of(read("notes")))
	rec("write over dir", errOnly(b.Write(ctx, "notes", []byte("x"))))
	rec("write under file", errOnly(b.Write(ctx, "notes/a.txt/child", []byte("x"))))
	rec("mkdir", errOnly(b.Mkdir(ctx, "d/e/f")))
	rec("mkdir again", errOnly(b.Mkdir(ctx, "d/e/f")))
	rec("mkdir over file", errOnly(b.Mkdir(ctx, "notes/a.txt")))
	rec("exists dir", of(b.Exists(ctx, "d/e")))
	rec("exists missing", of(b.Exists(ctx, "nope")))
	rec("exists under file", of(b.Exists(ctx, "notes/a.txt/x")))
	rec("stat file", of(stat("notes/a.txt")))
	rec("stat dir", of(stat("d/e")))
	rec("stat root", of(stat(".")))
	rec("stat missing", of(stat("missing")))
	rec("readdir root", of(b.ReadDir(ctx, ".")))
	rec("readdir d", of(b.ReadDir(ctx, "d")))
	rec("readdir missing", of(b.ReadDir(ctx, "missing")))
	rec("readdir file", of(b.ReadDir(ctx, "notes/a.txt")))
	entries, err := ab.Ls(ctx, b, "notes", true)
	var names []string
	for _, e := range entries {
		names = append(names, fmt.Sprintf("%s:%d:%v", e.Path, e.Size, e.IsDir))
	}
	rec("ls", outcome{names, err})
	rec("rename", errOnly(b.Rename(ctx, "notes/a.txt", "moved/deeper/b.txt")))
	rec("read renamed", of(read("moved/deeper/b.txt")))
	rec("rename missing", errOnly(b.Rename(ctx, "missing", "elsewhere")))
	rec("touch new", errOnly(b.Touch(ctx, "t/new.txt")))
	rec("touch existing", errOnly(b.Touch(ctx, "moved/deeper/b.txt")))
	rec("read touched", of(read("moved/deeper/b.txt")))
	rec("remove file", errOnly(b.Remove(ctx, "big.bin", ab.RemoveOptions{})))
	rec("remove missing", errOnly(b.Remove(ctx, "big.bin", ab.RemoveOptions{})))
	rec("remove missing force", errOnly(b.Remove(ctx, "big.bin", ab.RemoveOptions{Force: true})))
	rec("remove dir plain", errOnly(b.Remove(ctx, "d", ab.RemoveOptions{})))
	rec("remove dir recursive", errOnly(b.Remove(ctx, "d", ab.RemoveOptions{Recursive: true})))
	rec("exists removed", of(b.Exists(ctx, "d")))
	rec("escape", of(read("../outside")))
	rec("exec", of(exec("echo hello; echo err >&2", nil)))
	rec("exec pwd home", of(exec("pwd; printenv HOME", nil)))
	rec("exec fail", of(exec("echo out; echo bad >&2; exit 3", nil)))
	rec("exec cwd", of(exec("pwd", &ab.ExecOptions{Cwd: "moved"})))
	rec("exec env", of(exec(`printf '%s|%s' "$A" "$B"`, &ab.ExecOptions{Env: map[string]string{"A": "it's; $HOME", "B": "line\nbreak"}})))
	rec("exec stdin", of(exec("cat", &ab.ExecOptions{Stdin: strings.NewReader("piped")})))
	rec("exec missing cwd", of(exec("true", &ab.ExecOptions{Cwd: "no/such"})))
	rec("exec dangerous", of(exec("sudo ls", nil)))
	rec("exec bad env", of(exec("true", &ab.ExecOptions{Env: map[string]string{"X=1; touch ran #": "y"}})))
	rec("exec timeout", of(exec("sleep 5", &ab.ExecOptions{Timeout: 200 * time.Millisecond})))
	rec("glob", of(ab.Glob(ctx, b, "**/*.txt", ".")))
	for _, mode := range []ab.GrepMode{ab.GrepFilesWithMatches, ab.GrepContent, ab.GrepCount} {
		res, err := ab.Grep(ctx, b, ab.GrepOptions{Pattern: "sho", Mode: mode})
		rec("grep "+string(mode), outcome{grepText(res), err})
	}
	sc, err := b.Scope("tenants/one", nil)
	if err != nil {
		t.Fatal(err)
	}
	rec("scope write", errOnly(sc.Write(ctx, "x.txt", []byte("scoped"))))
	rec("parent sees it", of(read("tenants/one/x.txt")))
	res0, err := sc.Exec(ctx, "pwd; cat x.txt", nil)
	if res0 == nil {
		t.Fatalf("scope exec: %v", err)
	}
	rec("scope exec", outcome{string(res0.Stdout), err})
	rec("scope escape", of(sc.Read(ctx, "../../moved/deeper/b.txt")))
	res, err := ab.Grep(ctx, sc, ab.GrepOptions{Pattern: "scoped", Mode: ab.GrepContent})
	rec("scope grep", outcome{grepText(res), err})
	rec("final listing", of(b.ReadDir(ctx, ".")))
	return lines
}

// outcome is a step's value and error.
type outcome struct {
	v   any
	err error
}

func of[T any](v T, err error) outcome { return outcome{v, err} }
func errOnly(err error) outcome        { return outcome{nil, err} }

func grepText(r *ab.GrepResult) string {
	if r == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", *r)
}

// TestInteropReferenceMCPClient: the reference MCP client
// (RemoteFilesystemBackend.getMCPClient, with its X-Root-Dir, X-Scope-Path
// and bearer headers) lists and calls tools on this daemon.
func TestInteropReferenceMCPClient(t *testing.T) {
	modules := npmPeers(t)
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: ab.IsolationNone})
	out := runNode(t, filepath.Join("testdata", "refmcp.mjs"), modules, "127.0.0.1", fmt.Sprint(port), "tok", d.RootDir())
	got := map[string]string{}
	for line := range strings.Lines(string(out)) {
		var s struct {
			Step  string          `json:"step"`
			OK    bool            `json:"ok"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if !s.OK {
			t.Errorf("step %s failed: %s", s.Step, line)
		}
		got[s.Step] = string(s.Value)
	}
	want := map[string]string{
		"write_file":              `[false,"Successfully wrote to notes/a.txt"]`,
		"read_text_file":          `[false,"one\ntwo\nthree\n"]`,
		"list_directory":          `[false,"[DIR] notes"]`,
		"exec":                    `[false,"3"]`,
		"exec dangerous":          `true`,
		"escape":                  `true`,
		"scoped write":            `false`,
		"scoped list":             `[false,"[FILE] mine.txt"]`,
		"parent sees scoped file": `"alice"`,
	}
	for step, w := range want {
		if got[step] != w {
			t.Errorf("%s: got %s, want %s", step, got[step], w)
		}
	}
	for _, tool := range []string{"read_text_file", "write_file", "edit_file", "list_directory", "search_files", "exec", "grep"} {
		if !strings.Contains(got["list tools"], `"`+tool+`"`) {
			t.Errorf("tools %s lack %s", got["list tools"], tool)
		}
	}
	if !strings.Contains(got["grep"], "notes/a.txt") {
		t.Errorf("grep: %s", got["grep"])
	}
}

// The reference daemon does not know the background request and may not
// honour the signal request: Kill still ends the process, by closing its
// session if need be.
func TestInteropRemoteProcessKill(t *testing.T) {
	ref := startRefDaemon(t, "tok")
	rb := remoteOn(t, ref.port, ref.root, "tok", ab.RemoteConfig{HostKey: ref.hostKey})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := rb.Start(ctx, "echo up; sleep 1000", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitPrinted(t, p, "up\n", 30*time.Second)
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	res, err := p.Wait(ctx)
	if ab.ErrorCode(err) != ab.CodeExecFailed || res == nil || res.ExitCode != 137 || p.Info().State != ab.ProcessKilled {
		t.Errorf("after Kill on the reference daemon: %+v, %v, %+v", res, err, p.Info())
	}
}

// A process on a terminal sends pty-req and window-change. The reference
// daemon accepts both and ignores them for exec (its commands get pipes),
// so there the process runs without a terminal but otherwise works: input,
// output, TERM, Resize. This daemon gives it a real terminal.
func TestInteropRemoteTerminal(t *testing.T) {
	ref := startRefDaemon(t, "tok")
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok"})
	for _, c := range []struct {
		name string
		b    *ab.RemoteBackend
		tty  string
	}{
		{"reference", remoteOn(t, ref.port, ref.root, "tok", ab.RemoteConfig{HostKey: ref.hostKey}), "notty"},
		{"this daemon", remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "tok"}), "tty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p, err := c.b.Start(ctx, `echo "term=$TERM"; if test -t 0; then echo tty; else echo notty; fi; read x; echo "got:$x"`,
				&ab.ExecOptions{Terminal: &ab.Terminal{Term: "vt100", Rows: 30, Cols: 90}})
			require.NoError(t, err)
			require.NoError(t, p.Resize(40, 100), "window-change")
			_, err = p.Stdin().Write([]byte("hi\n"))
			require.NoError(t, err)
			res, err := p.Wait(ctx)
			require.NoError(t, err)
			out := strings.ReplaceAll(string(res.Stdout), "\r\n", "\n")
			assert.Contains(t, out, "term=vt100\n")
			assert.Contains(t, out, "\n"+c.tty+"\n")
			assert.Contains(t, out, "got:hi\n")
		})
	}
}

// RemoteBackend.Watch: this daemon streams inotify events (a scan once an
// hour would never see the change in time); the reference has no watch
// subsystem, and the backend scans it through SFTP.
func TestInteropRemoteWatch(t *testing.T) {
	ref := startRefDaemon(t, "tok")
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok"})
	for _, c := range []struct {
		name string
		b    *ab.RemoteBackend
		root string
		poll time.Duration
	}{
		{"reference", remoteOn(t, ref.port, ref.root, "tok", ab.RemoteConfig{HostKey: ref.hostKey}), ref.root, 20 * time.Millisecond},
		{"this daemon", remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "tok"}), d.RootDir(), time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, c.b.Mkdir(ctx, "w"))
			events, err := ab.Watch(ctx, c.b, "w", &ab.WatchOptions{PollInterval: c.poll})
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(c.root, "w", "from-the-host.txt"), []byte("x"), 0o644))
			var seen []ab.WatchEvent
			for ev := range events {
				seen = append(seen, ev)
				if ev.Path == "w/from-the-host.txt" && ev.Op == ab.WatchCreate {
					cancel()
				}
			}
			assert.Contains(t, seen, ab.WatchEvent{Op: ab.WatchCreate, Path: "w/from-the-host.txt"})
		})
	}
}

// Through a scope jailed by this daemon, a link to a sibling scope
// carries no event of the sibling's.
func TestRemoteWatchScopeJail(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok"})
	b := remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "tok"})
	root := d.RootDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "s1"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "s2"), 0o755))
	require.NoError(t, os.Symlink("../s2", filepath.Join(root, "s1", "sibling")))
	s1, err := b.Scope("s1", nil)
	require.NoError(t, err)
	defer s1.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events, err := s1.Watch(ctx, ".", &ab.WatchOptions{PollInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "s2", "secret.txt"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "s1", "mine.txt"), []byte("x"), 0o644))
	var seen []ab.WatchEvent
	for ev := range events {
		seen = append(seen, ev)
		if ev.Path == "mine.txt" {
			cancel()
		}
	}
	require.Contains(t, seen, ab.WatchEvent{Op: ab.WatchCreate, Path: "mine.txt"})
	for _, ev := range seen {
		assert.NotContains(t, ev.Path, "secret")
	}
}

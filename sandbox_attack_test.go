//go:build linux

package agentbackend

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbackend/agentbackend/internal/attacktest"
	"github.com/agentbackend/agentbackend/internal/proctest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// The sandbox guarantees of the specification (safety.md, "Sandbox
// guarantees"), attacked through LocalBackend and scopes the way a hostile
// agent would. Each attack asserts that its target stayed unread and
// unwritten. The tests run as whoever runs them (root is the normal case
// for a server; an unprivileged user must get the same), and the
// dangerous-command check is off where it would stop an attack before
// the sandbox is reached (`mo'u'nt` gets past it anyway).
// internal/sandbox/attack_test.go attacks the sandbox itself.

// attackIsolations are the isolation modes commands can run with.
var attackIsolations = []Isolation{IsolationNone, IsolationSoftware, IsolationBwrap}

// attackLocal returns a backend with isolation iso (skipping bwrap when it
// is missing, failing when AGENTBE_REQUIRE names it).
func attackLocal(t *testing.T, iso Isolation, cfg LocalConfig) *LocalBackend {
	t.Helper()
	if iso == IsolationBwrap {
		testenv.NeedBwrap(t)
	}
	cfg.Isolation = iso
	return newLocal(t, cfg)
}

func TestSandboxAttackCapabilities(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{AllowDangerous: true})
	ctx := context.Background()
	res, err := b.Exec(ctx, "grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status", nil)
	require.NoError(t, err)
	for line := range strings.SplitSeq(strings.TrimSpace(string(res.Stdout)), "\n") {
		assert.True(t, strings.HasSuffix(line, "\t0000000000000000"), "uid %d: %s", os.Geteuid(), line)
	}

	target := "/usr/agentbe-attack-" + proctest.SleepArg()
	t.Cleanup(func() { os.Remove(target) })
	_, err = b.Exec(ctx, "mount -o remount,rw,bind /usr; touch "+target, nil)
	assert.Error(t, err)
	assert.NoFileExists(t, target, "the sandbox wrote the host's /usr")

	for path, attack := range map[string]string{
		"/proc/sys/kernel/core_pattern": "echo '|/bin/sh -c id' > /proc/sys/kernel/core_pattern",
		"/proc/sys/kernel/hostname":     "echo agentbe-evil > /proc/sys/kernel/hostname",
	} {
		before, err := os.ReadFile(path)
		require.NoError(t, err)
		_, err = b.Exec(ctx, attack, nil)
		assert.Error(t, err, attack)
		if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
			_ = os.WriteFile(path, before, 0)
			t.Errorf("the sandbox changed the host's %s to %q (restored)", path, after)
		}
	}
}

// Commands get a minimal environment on every isolation; InheritEnv opts
// into this process's.
func TestSandboxAttackEnvironment(t *testing.T) {
	t.Setenv("AGENTBE_SECRET_KEY", "sk-host-secret")
	ctx := context.Background()
	for _, iso := range attackIsolations {
		t.Run(string(iso), func(t *testing.T) {
			b := attackLocal(t, iso, LocalConfig{Env: map[string]string{"CONFIGURED": "yes"}})
			res, err := b.Exec(ctx, "env", nil)
			require.NoError(t, err)
			env := string(res.Stdout)
			assert.NotContains(t, env, "sk-host-secret")
			assert.Contains(t, env, "CONFIGURED=yes\n")
			assert.Contains(t, env, "\nPATH=")
			for line := range strings.SplitSeq(strings.TrimSpace(env), "\n") {
				name, _, _ := strings.Cut(line, "=")
				allowed := strings.HasPrefix(name, "LC_") || strings.Contains(
					" PATH HOME PWD LANG LANGUAGE TERM TMPDIR CONFIGURED SHLVL _ OLDPWD AGENTBE_COMMAND_TAG ", " "+name+" ")
				assert.True(t, allowed, "a host variable reached the command: %s", line)
			}

			if iso == IsolationBwrap {
				// No host process shows in /proc: not this test binary's
				// command line, nor its environment.
				res, err = b.Exec(ctx, `for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline; echo; tr '\0' ' ' < $p/environ; echo; done`, nil)
				require.NoError(t, err)
				assert.NotContains(t, string(res.Stdout), filepath.Base(os.Args[0]), "a host process is visible in /proc")
			}
			inherit := attackLocal(t, iso, LocalConfig{InheritEnv: true})
			res, err = inherit.Exec(ctx, `printf %s "$AGENTBE_SECRET_KEY"`, nil)
			require.NoError(t, err)
			assert.Equal(t, "sk-host-secret", string(res.Stdout))
		})
	}
}

// A listener on the host's 127.0.0.1 is out of reach of a bwrap command,
// unless the backend opts into the host's network.
func TestSandboxAttackHostLoopback(t *testing.T) {
	connect, reached := attacktest.HostService(t)
	ctx := context.Background()

	b := attackLocal(t, IsolationBwrap, LocalConfig{Shell: ShellBash, AllowDangerous: true}) // /dev/tcp is on the list
	res, err := b.Exec(ctx, connect, nil)
	assert.Error(t, err)
	assert.Empty(t, res.Stdout, "a sandboxed command reached the host's loopback")
	assert.False(t, reached(false))

	host := attackLocal(t, IsolationBwrap, LocalConfig{Shell: ShellBash, Network: NetworkHost, AllowDangerous: true})
	res, err = host.Exec(ctx, connect, nil)
	require.NoError(t, err)
	assert.Equal(t, "connected\n", string(res.Stdout))
	assert.True(t, reached(true), "the listener saw no connection")

	_, err = NewLocal(LocalConfig{RootDir: t.TempDir(), Network: "bridge"})
	localWantCode(t, err, CodeInvalidConfiguration, "unknown network")
}

// attackWorkspace writes the files of a tenant's scope with secrets in it.
func attackWorkspace(t *testing.T, b FileBackend) {
	t.Helper()
	for p, content := range map[string]string{
		"users/alice/.env":            "SECRET=alice-env",
		"users/alice/deep/dir/.env":   "SECRET=deep-env",
		"users/alice/.ssh/id_ed25519": "SECRET=ssh-key",
		"users/alice/notes.txt":       "notes",
		"users/alice/locked/data.txt": "locked",
	} {
		localWrite(t, b, p, content)
	}
}

// Through a scope with DefaultPermissions, a bwrap command reads none of
// the secrets the file API denies, however it spells them, and cannot use
// a hard link to lead the file API to one.
func TestSandboxAttackScopeReadsSecrets(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{})
	attackWorkspace(t, b)
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: DefaultPermissions()})
	require.NoError(t, err)
	ctx := context.Background()
	for name, attack := range map[string]string{
		"cat glob":   "cat .e?v deep/*/.e?v .s?h/*",
		"grep -r":    "grep -r SECRET .",
		"tar":        "tar cf - . | tar xOf -",
		"cp":         "cp .e?v copy; cat copy",
		"find exec":  "find . -type f -exec cat {} +",
		"dd":         "dd if=.e?v 2>/dev/null",
		"list .ssh":  "ls -A .s?h",
		"shell read": "while read -r l; do echo \"$l\"; done < .e?v",
	} {
		t.Run(name, func(t *testing.T) {
			res, _ := alice.Exec(ctx, attack, nil)
			require.NotNil(t, res)
			assert.NotContains(t, string(res.Stdout)+string(res.Stderr), "SECRET")
			assert.NotContains(t, string(res.Stdout), "id_ed25519")
		})
	}
	t.Run("background", func(t *testing.T) {
		p, err := alice.Start(ctx, "cat .e?v deep/*/.e?v .s?h/*; grep -r SECRET .", nil)
		require.NoError(t, err)
		res, _ := p.Wait(ctx)
		require.NotNil(t, res)
		assert.NotContains(t, string(res.Stdout)+string(res.Stderr), "SECRET")
	})
	t.Run("hard link", func(t *testing.T) {
		_, err := alice.Exec(ctx, "ln .e?v h", nil)
		assert.Error(t, err)
		data, err := alice.Read(ctx, "h")
		assert.Error(t, err, "the file API read a link to a denied file: %q", data)
		assert.NotContains(t, string(data), "SECRET")
	})
	// The host's files are untouched, and the file API still denies them.
	localWantFile(t, filepath.Join(b.RootDir(), "users/alice/.env"), "SECRET=alice-env")
	_, err = alice.Read(ctx, ".env")
	localWantCode(t, err, CodePermissionDenied, "read .env")
}

// Paths a scope denies for writing are read-only in the sandbox: they
// cannot be written, removed, renamed or replaced; the rest can. (The
// globs get past the exec-argument speed bump, as an attacker's would.)
func TestSandboxAttackScopeWritesProtected(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{AllowDangerous: true})
	attackWorkspace(t, b)
	perms := DefaultPermissions()
	perms.Write.Rules = append(perms.Write.Rules, Rule{Pattern: "locked/**", Action: Deny})
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: perms})
	require.NoError(t, err)
	ctx := context.Background()
	res, err := alice.Exec(ctx, `
		echo x > lo?ked/data.txt; echo x >> lo?ked/data.txt; rm -f lo?ked/data.txt; mv lo?ked/data.txt notes2
		touch lo?ked/new; mv lo?ked moved; rm -rf lo?ked
		echo x > .e?v; rm -f .e?v; ln -s /etc/passwd .env2 && mv .env2 .e?v
		echo changed > notes.txt; mkdir -p made && echo ok > made/f; echo done`, nil)
	require.NoError(t, err)
	assert.Equal(t, "done\n", string(res.Stdout))
	root := filepath.Join(b.RootDir(), "users/alice")
	localWantFile(t, filepath.Join(root, "locked/data.txt"), "locked")
	localWantFile(t, filepath.Join(root, ".env"), "SECRET=alice-env")
	localWantFile(t, filepath.Join(root, "notes.txt"), "changed\n")
	localWantFile(t, filepath.Join(root, "made/f"), "ok\n")
	for _, p := range []string{"locked/new", "moved"} { // (notes2 is a copy: mv falls back to copying, reading is allowed)
		assert.NoFileExists(t, filepath.Join(root, p))
	}
}

// Ask counts as deny inside a command (it cannot stop to ask): under
// StrictPermissions an approved command sees the scope read-only.
// A mask is a mount, which moves with its directory: renaming a directory
// above a denied path would carry it to a name no rule covers, where the
// next command sees it unmasked. The directories above masks are pinned.
func TestSandboxAttackScopeMovesMaskedParent(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{AllowDangerous: true})
	localWrite(t, b, "users/alice/deep/cfg/secret.txt", "SECRET=cfg")
	localWrite(t, b, "users/alice/keep/data.txt", "kept")
	perms := Permissions{}
	perms.Read.Rules = []Rule{{Pattern: "deep/cfg/secret.txt", Action: Deny}}
	perms.Write.Rules = []Rule{{Pattern: "keep/data.txt", Action: Deny}}
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: &perms})
	require.NoError(t, err)
	ctx := context.Background()
	var out strings.Builder
	for _, attack := range []string{
		"mv deep/cfg deep/moved; mv deep moved; mv keep kept; cat moved/*/secret.txt deep/moved/secret.txt",
		"cat moved/*/secret.txt deep/moved/secret.txt; echo x > kept/data.txt",
		"mkdir -p d2 && mv deep/cfg d2/; rm -rf deep; cat d2/cfg/secret.txt",
	} {
		res, err := alice.Exec(ctx, attack, nil)
		require.NotNil(t, res, "%v", err)
		out.Write(res.Stdout)
	}
	assert.NotContains(t, out.String(), "SECRET")
	localWantFile(t, filepath.Join(b.RootDir(), "users/alice/deep/cfg/secret.txt"), "SECRET=cfg")
	localWantFile(t, filepath.Join(b.RootDir(), "users/alice/keep/data.txt"), "kept")
}

// A directory the walk that computes the masks cannot read (mode 000:
// the command's user owns it and may chmod it back) must not hide what
// the rules deny inside it. As root the walk reads it anyway; as an
// unprivileged user it cannot, and the directory is then masked whole.
func TestSandboxAttackScopeUnreadableDirectory(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{AllowDangerous: true})
	localWrite(t, b, "users/alice/locked/secret.txt", "SECRET=locked")
	localWrite(t, b, "users/alice/locked/ok.txt", "fine")
	localWrite(t, b, "users/alice/ro/data.txt", "protected")
	perms := Permissions{}
	perms.Read.Rules = []Rule{{Pattern: "locked/secret.txt", Action: Deny}}
	perms.Write.Rules = []Rule{{Pattern: "ro/data.txt", Action: Deny}}
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: &perms})
	require.NoError(t, err)
	ctx := context.Background()
	for _, dir := range []string{"locked", "ro"} {
		require.NoError(t, os.Chmod(filepath.Join(b.RootDir(), "users/alice", dir), 0))
		t.Cleanup(func() { _ = os.Chmod(filepath.Join(b.RootDir(), "users/alice", dir), 0o755) })
	}
	res, err := alice.Exec(ctx, "chmod 755 locked ro; cat locked/*; echo x > r?/data.txt", nil)
	require.NotNil(t, res, "%v", err)
	assert.NotContains(t, string(res.Stdout), "SECRET")
	require.NoError(t, os.Chmod(filepath.Join(b.RootDir(), "users/alice/ro"), 0o755))
	localWantFile(t, filepath.Join(b.RootDir(), "users/alice/ro/data.txt"), "protected")
}

// A command of the scope swaps a link between an allowed file and a
// denied one as fast as it can, while the file API reads the link: the
// check (the link's real path judged) and the read must be about the same
// file, so no read ever returns the denied one.
func TestSandboxAttackScopeLinkSwapRace(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{AllowDangerous: true})
	attackWorkspace(t, b)
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: DefaultPermissions()})
	require.NoError(t, err)
	ctx := context.Background()
	p, err := alice.Start(ctx, "touch started; i=0; while [ $i -lt 1000000 ]; do ln -sfn notes.txt alias; ln -sfn .e?v alias; i=$((i+1)); done", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Kill(); _, _ = p.Wait(context.Background()) })
	require.Eventually(t, func() bool { ok, _ := alice.Exists(ctx, "started"); return ok }, 10*time.Second, time.Millisecond)
	reads, refused := 0, 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && reads < 50000; reads++ {
		data, err := alice.Read(ctx, "alias")
		if err != nil {
			refused++
		}
		require.NotContains(t, string(data), "SECRET", "read %d returned the denied file through a swapped link", reads)
	}
	t.Logf("%d reads, %d refused", reads, refused)
	assert.Positive(t, refused, "the link never pointed at the denied file when read")
	localWantFile(t, filepath.Join(b.RootDir(), "users/alice/.env"), "SECRET=alice-env")
}

// The same race on writes: the file API writes through a link swapped
// between a writable file and a protected one. The swapper here is a
// goroutine renaming links into place (a command could do the same, only
// more slowly: each swap there is a fork and an exec), which makes the
// narrow window of a write easy to hit.
func TestSandboxAttackScopeLinkSwapWriteRace(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{AllowDangerous: true})
	attackWorkspace(t, b)
	perms := DefaultPermissions()
	perms.Write.Rules = append(perms.Write.Rules, Rule{Pattern: "locked/**", Action: Deny})
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: perms})
	require.NoError(t, err)
	ctx := context.Background()
	dir := filepath.Join(b.RootDir(), "users/alice")
	stop, swapped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			target := "notes.txt"
			if i%2 == 1 {
				target = "locked/data.txt"
			}
			tmp := filepath.Join(dir, fmt.Sprintf(".alias%d", i%2))
			if os.Symlink(target, tmp) == nil {
				_ = os.Rename(tmp, filepath.Join(dir, "alias"))
			}
		}
	}()
	writes, refused := 0, 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && writes < 20000; writes++ {
		if alice.Write(ctx, "alias", []byte("PWNED")) != nil {
			refused++
		}
	}
	close(stop)
	<-swapped
	t.Logf("%d writes, %d refused", writes, refused)
	assert.Positive(t, refused, "the link never pointed at the protected file when written")
	localWantFile(t, filepath.Join(dir, "locked/data.txt"), "locked")
}

func TestSandboxAttackScopeAskIsDenyInside(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{})
	attackWorkspace(t, b)
	perms := StrictPermissions()
	perms.Approver = ApproverFunc(func(context.Context, Request) (Decision, error) { return AllowOnce, nil })
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: perms})
	require.NoError(t, err)
	res, err := alice.Exec(context.Background(), "cat notes.txt; echo x > notes.txt", nil)
	assert.Error(t, err)
	assert.Equal(t, "notes", string(res.Stdout))
	localWantFile(t, filepath.Join(b.RootDir(), "users/alice/notes.txt"), "notes")
}

// Without bwrap nothing reaches into a command, and the scope says so
// once in the backend's log.
func TestSandboxUnmaskedScopeWarns(t *testing.T) {
	var log syncBuffer
	b := attackLocal(t, IsolationNone, LocalConfig{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	attackWorkspace(t, b)
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: DefaultPermissions()})
	require.NoError(t, err)
	ctx := context.Background()
	for range 2 {
		res, err := alice.Exec(ctx, "cat .e?v", nil)
		require.NoError(t, err)
		assert.Equal(t, "SECRET=alice-env", string(res.Stdout), "isolation none: exec reads what the file API denies (documented)")
	}
	assert.Equal(t, 1, strings.Count(log.String(), "can read and write paths its permissions deny"), log.String())
	assert.Contains(t, log.String(), "isolation is none")
}

// Auto isolation that falls back to software says so once, naming what is
// missing.
func TestSandboxAutoFallbackWarns(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no bwrap here
	var log syncBuffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	for range 2 {
		b, err := NewLocal(LocalConfig{RootDir: t.TempDir(), Logger: logger})
		require.NoError(t, err)
		assert.Equal(t, IsolationSoftware, b.Isolation())
		b.Close()
	}
	assert.Equal(t, 1, strings.Count(log.String(), "level=WARN"), log.String())
	assert.Contains(t, log.String(), "bwrap command not found")
	assert.Contains(t, log.String(), "heuristic")

	_, err := NewLocal(LocalConfig{RootDir: t.TempDir(), Isolation: IsolationBwrap, Logger: logger})
	localWantCode(t, err, CodeMissingUtilities, "explicit bwrap without bwrap")
}

// A bwrap that cannot drop the capabilities (here: one that loses the
// --cap-drop argument, run by root) is never used: explicit bwrap is
// MISSING_UTILITIES, auto falls back to software with a warning.
func TestSandboxRefusesBwrapKeepingCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root's sandbox would hold capabilities")
	}
	fake := attacktest.FakeBwrap(t, `case "$a" in --cap-drop|ALL) ;; *) set -- "$@" "$a";; esac`)
	t.Setenv("PATH", filepath.Dir(fake)+":"+os.Getenv("PATH"))
	_, err := NewLocal(LocalConfig{RootDir: t.TempDir(), Isolation: IsolationBwrap})
	e := localWantCode(t, err, CodeMissingUtilities, "bwrap keeping capabilities")
	if e != nil {
		assert.Contains(t, e.Message, "capabilities")
	}
	var log syncBuffer
	b, err := NewLocal(LocalConfig{RootDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, IsolationSoftware, b.Isolation())
	assert.Contains(t, log.String(), "keeps capabilities")
}

// attackEscapes are ways a command detaches a process from its group (the
// software isolation's heuristic lets them through); %s is the marker.
var attackEscapes = map[string]string{
	"setsid":      "setsid sleep %s &",
	"subshell":    "(setsid sleep %s &) &",
	"nohup":       "nohup sleep %s >/dev/null 2>&1 &",
	"double fork": `sh -c 'setsid sh -c "sleep %s </dev/null >/dev/null 2>&1 &" &' </dev/null >/dev/null 2>&1`,
}

// Nothing a command started outlives a timeout, a cancelled context, Kill
// or Close, however it detached, on every isolation mode.
func TestSandboxAttackLeftovers(t *testing.T) {
	ends := map[string]func(t *testing.T, b *LocalBackend, command, mark string){
		"timeout": func(t *testing.T, b *LocalBackend, command, mark string) {
			done := make(chan error, 1)
			go func() {
				_, err := b.Exec(context.Background(), command, &ExecOptions{Timeout: 3 * time.Second})
				done <- err
			}()
			proctest.WaitRunning(t, mark, 2)
			err := <-done
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		},
		"cancel": func(t *testing.T, b *LocalBackend, command, mark string) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := b.Exec(ctx, command, nil)
				done <- err
			}()
			proctest.WaitRunning(t, mark, 2)
			cancel()
			assert.ErrorIs(t, <-done, context.Canceled)
		},
		"close": func(t *testing.T, b *LocalBackend, command, mark string) {
			done := make(chan error, 1)
			go func() {
				_, err := b.Exec(context.Background(), command, nil)
				done <- err
			}()
			proctest.WaitRunning(t, mark, 2)
			require.NoError(t, b.Close())
			localWantCode(t, <-done, CodeDestroyed, "exec after Close")
		},
		"background kill": func(t *testing.T, b *LocalBackend, command, mark string) {
			p, err := b.Start(context.Background(), command, nil)
			require.NoError(t, err)
			proctest.WaitRunning(t, mark, 2)
			require.NoError(t, p.Kill())
			_, _ = p.Wait(context.Background())
		},
		"background close": func(t *testing.T, b *LocalBackend, command, mark string) {
			p, err := b.Start(context.Background(), command, nil)
			require.NoError(t, err)
			proctest.WaitRunning(t, mark, 2)
			require.NoError(t, b.Close())
			_, _ = p.Wait(context.Background())
		},
	}
	for _, iso := range attackIsolations {
		t.Run(string(iso), func(t *testing.T) {
			t.Parallel() // each waits out its timeouts
			for escapeName, escape := range attackEscapes {
				for endName, end := range ends {
					t.Run(escapeName+" "+endName, func(t *testing.T) {
						b := attackLocal(t, iso, LocalConfig{})
						mark := proctest.SleepArg()
						t.Cleanup(func() { attacktest.KillMarked(mark) })
						end(t, b, fmt.Sprintf(escape, mark)+"\nsleep "+mark, mark)
						proctest.WaitGone(t, mark)
					})
				}
			}
		})
	}
}

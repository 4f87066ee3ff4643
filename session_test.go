package agentbackend_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	ab "github.com/agentbackend/agentbackend"
)

func newSessionManager(t *testing.T, cfg ab.SessionConfig) *ab.SessionManager {
	t.Helper()
	cli := needDocker(t)
	if cfg.Docker.Image == "" && cfg.Docker.Runtime == nil {
		cfg.Docker.Image = dockerTestImage
	}
	cfg.Docker.Client = cli
	m, err := ab.NewSessionManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return m
}

// managerContainers lists the containers of manager m (running or not).
func managerContainers(t *testing.T, m *ab.SessionManager, session string) []container.Summary {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", ab.DockerLabelManager+"="+m.ID()))
	if session != "" {
		f.Add("label", ab.DockerLabelSession+"="+session)
	}
	list, err := needDocker(t).ContainerList(dockerCtx(t), container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestSessionPersistsAcrossContainers(t *testing.T) {
	needDocker(t)
	t.Parallel()
	ctx := dockerCtx(t)
	root := t.TempDir()
	m := newSessionManager(t, ab.SessionConfig{WorkspaceRoot: root, IdleTimeout: time.Millisecond})

	alice, err := m.GetOrCreate(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Write(ctx, "notes/todo.txt", []byte("remember")); err != nil {
		t.Fatal(err)
	}
	assertLockedDown(t, alice.ContainerID())
	if again, err := m.GetOrCreate(ctx, "alice"); err != nil || again != alice {
		t.Fatalf("second GetOrCreate = %p, %v; want the same backend %p", again, err, alice)
	}
	// The files are on the host, under WorkspaceRoot/<id>.
	if data, err := os.ReadFile(filepath.Join(root, "alice", "notes", "todo.txt")); err != nil || string(data) != "remember" {
		t.Errorf("host copy: %q, %v", data, err)
	}

	// Idle: the container goes, the files stay.
	time.Sleep(20 * time.Millisecond)
	if n := m.CleanupIdle(); n != 1 {
		t.Fatalf("CleanupIdle closed %d sessions, want 1", n)
	}
	if alice.Status() != ab.StatusDestroyed {
		t.Errorf("reaped session status %s", alice.Status())
	}
	if list := managerContainers(t, m, "alice"); len(list) != 0 {
		t.Errorf("reaped session still has %d containers", len(list))
	}
	back, err := m.GetOrCreate(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if back.ContainerID() == alice.ContainerID() {
		t.Error("a reaped session got its old container back")
	}
	if data, err := back.Read(ctx, "notes/todo.txt"); err != nil || string(data) != "remember" {
		t.Errorf("returning session reads %q, %v", data, err)
	}

	// A new manager (a restarted process) finds the files too.
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GetOrCreate(ctx, "alice"); err == nil {
		t.Error("GetOrCreate after Shutdown succeeded")
	}
	m2 := newSessionManager(t, ab.SessionConfig{WorkspaceRoot: root})
	b2, err := m2.GetOrCreate(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := b2.Exec(ctx, "cat notes/todo.txt", nil); err != nil || string(res.Stdout) != "remember" {
		t.Errorf("after a restart: %+v, %v", res, err)
	}
}

func TestSessionConcurrent(t *testing.T) {
	needDocker(t)
	t.Parallel()
	ctx := dockerCtx(t)
	m := newSessionManager(t, ab.SessionConfig{WorkspaceRoot: t.TempDir()})

	// Ten sessions at once, each in its own container, none seeing another's
	// files.
	const sessions = 10
	var wg sync.WaitGroup
	backends := make([]*ab.DockerBackend, sessions)
	errs := make([]error, sessions)
	for i := range sessions {
		wg.Go(func() {
			id := fmt.Sprintf("user-%d", i)
			b, err := m.GetOrCreate(ctx, id)
			if err == nil {
				err = b.Write(ctx, "whoami.txt", []byte(id))
			}
			backends[i], errs[i] = b, err
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	for i, b := range backends {
		if errs[i] != nil {
			t.Fatalf("session %d: %v", i, errs[i])
		}
		ids[b.ContainerID()] = true
		names, err := b.ReadDir(ctx, ".")
		if err != nil || len(names) != 1 {
			t.Errorf("session %d sees %q, %v", i, names, err)
		}
		if data, err := b.Read(ctx, "whoami.txt"); err != nil || string(data) != fmt.Sprintf("user-%d", i) {
			t.Errorf("session %d reads %q, %v", i, data, err)
		}
	}
	if len(ids) != sessions {
		t.Errorf("%d containers for %d sessions", len(ids), sessions)
	}
	if s := m.Stats(); s.Total != sessions {
		t.Errorf("Stats = %+v", s)
	}

	// Concurrent GetOrCreate of one new session makes one container.
	var mu sync.Mutex
	got := map[*ab.DockerBackend]bool{}
	for range 8 {
		wg.Go(func() {
			b, err := m.GetOrCreate(ctx, "shared")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[b] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(got) != 1 {
		t.Errorf("8 concurrent GetOrCreate made %d backends", len(got))
	}
	if list := managerContainers(t, m, "shared"); len(list) != 1 {
		t.Errorf("session shared has %d containers", len(list))
	}

	// Shutdown removes every container of the manager.
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if list := managerContainers(t, m, ""); len(list) != 0 {
		t.Errorf("%d containers left after Shutdown", len(list))
	}
}

func TestSessionLeaseKeepsSessionAlive(t *testing.T) {
	needDocker(t)
	t.Parallel()
	ctx := dockerCtx(t)
	m := newSessionManager(t, ab.SessionConfig{IdleTimeout: time.Millisecond})
	lease, err := m.Acquire(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := m.CleanupIdle(); n != 0 {
		t.Errorf("CleanupIdle reaped %d sessions in use", n)
	}
	lease.Release()
	time.Sleep(20 * time.Millisecond)
	if n := m.CleanupIdle(); n != 1 {
		t.Errorf("CleanupIdle reaped %d released sessions, want 1", n)
	}
}

func TestSessionIDs(t *testing.T) {
	for _, id := range []string{"alice", "user-1", "A.b_c-9", strings.Repeat("a", 128)} {
		if !ab.ValidSessionID(id) {
			t.Errorf("ValidSessionID(%q) = false", id)
		}
	}
	bad := []string{"", ".", "..", "../x", "a/b", "/abs", "a b", "-flag", ".hidden", "a\x00b", "a\nb", "naïve", strings.Repeat("a", 129)}
	for _, id := range bad {
		if ab.ValidSessionID(id) {
			t.Errorf("ValidSessionID(%q) = true", id)
		}
	}
	needDocker(t)
	m := newSessionManager(t, ab.SessionConfig{WorkspaceRoot: t.TempDir()})
	for _, id := range bad {
		if _, err := m.GetOrCreate(dockerCtx(t), id); !errors.Is(err, ab.ErrInvalidConfiguration) {
			t.Errorf("GetOrCreate(%q) = %v, want INVALID_CONFIGURATION", id, err)
		}
	}
	if _, err := ab.NewSessionManager(ab.SessionConfig{WorkspaceRoot: "relative"}); !errors.Is(err, ab.ErrInvalidConfiguration) {
		t.Errorf("relative WorkspaceRoot: %v", err)
	}
	if _, err := ab.NewSessionManager(ab.SessionConfig{Docker: ab.DockerConfig{ContainerID: "x"}}); !errors.Is(err, ab.ErrInvalidConfiguration) {
		t.Errorf("ContainerID in sessions: %v", err)
	}
}

// TestSessionWarmContainers: the manager keeps WarmContainers containers
// running and no more; a new session gets one of them (already running,
// locked down, its workspace ready) and another is started; a taken one is
// reaped like any session's; Shutdown removes every container, the ready
// ones too; WarmContainers with a WorkspaceRoot is refused.
func TestSessionWarmContainers(t *testing.T) {
	needDocker(t)
	t.Parallel()
	_, err := ab.NewSessionManager(ab.SessionConfig{Docker: ab.DockerConfig{Image: dockerTestImage}, WarmContainers: 1, WorkspaceRoot: t.TempDir()})
	if ab.ErrorCode(err) != ab.CodeInvalidConfiguration {
		t.Errorf("WarmContainers with WorkspaceRoot: %v", err)
	}
	ctx := dockerCtx(t)
	m := newSessionManager(t, ab.SessionConfig{WarmContainers: 2, IdleTimeout: time.Millisecond})
	waitWarmContainers := func(n int) []container.Summary {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if m.Stats().Warm == n {
				return managerContainers(t, m, "")
			}
			if time.Now().After(deadline) {
				t.Fatalf("warm containers: %+v, want %d ready", m.Stats(), n)
			}
		}
	}
	ready := waitWarmContainers(2)
	if len(ready) != 2 {
		t.Fatalf("%d containers with 2 warm ones ready, want 2", len(ready))
	}

	alice, err := m.GetOrCreate(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	taken := false
	for _, c := range ready {
		taken = taken || c.ID == alice.ContainerID()
	}
	if !taken {
		t.Errorf("the new session did not get a warm container")
	}
	assertLockedDown(t, alice.ContainerID())
	if res, err := alice.Exec(ctx, "pwd; echo hi > f; cat f", nil); err != nil || string(res.Stdout) != alice.RootDir()+"\nhi\n" {
		t.Errorf("first Exec in a warm container: %+v, %v", res, err)
	}
	if got := waitWarmContainers(2); len(got) != 3 {
		t.Errorf("%d containers for one session and 2 warm, want 3", len(got))
	}

	time.Sleep(20 * time.Millisecond)
	if n := m.CleanupIdle(); n != 1 || alice.Status() != ab.StatusDestroyed {
		t.Errorf("CleanupIdle reaped %d sessions (alice %s), want alice's", n, alice.Status())
	}
	if got := managerContainers(t, m, ""); len(got) != 2 {
		t.Errorf("%d containers after the session was reaped, want the 2 warm ones", len(got))
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := managerContainers(t, m, ""); len(got) != 0 {
		t.Errorf("Shutdown left %d containers", len(got))
	}
}

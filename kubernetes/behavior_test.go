package kubernetes_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/kubernetes"
)

// waitNoProc waits until no process in b's pod has args containing needle
// (ps through the backend), and fails the test if one stays. (The pod's
// first process runs "sleep 3600": pick needles that cannot match it.)
func waitNoProc(t *testing.T, b ab.FileBackend, needle string) {
	t.Helper()
	require.Eventually(t, func() bool {
		ps := run(t, b, "ps -o pid,args")
		return !strings.Contains(ps, needle)
	}, 30*time.Second, 100*time.Millisecond, "processes matching %q left in the pod", needle)
}

// TestFilesMovedWhole moves files around the size where they switch from
// the op shells to exec streams, with bytes the protocols treat specially
// (NUL, the sentinel's \x01 and \x02, '#', newlines), over WebSocket and
// SPDY: every byte arrives, checked inside the pod too.
func TestFilesMovedWhole(t *testing.T) {
	for _, spdy := range []bool{false, true} {
		t.Run(map[bool]string{false: "WebSocket", true: "SPDY"}[spdy], func(t *testing.T) {
			b := newBackend(t, nil)
			if spdy {
				kubernetes.ForceSPDY(b)
			}
			ctx := testCtx(t)
			for _, size := range []int{0, 1, 4 << 10, 1<<20 - 1, 1 << 20, 1<<20 + 1, 16 << 20} {
				data := make([]byte, size)
				_, _ = rand.Read(data)
				if size > 8 {
					copy(data, "\x00\x01AB\x02#END\n")
				}
				name := fmt.Sprintf("dir/f-%d.bin", size)
				require.NoError(t, b.Write(ctx, name, data), "Write %d bytes", size)
				got, err := b.Read(ctx, name)
				require.NoError(t, err, "Read %d bytes", size)
				require.True(t, bytes.Equal(data, got), "Read %d bytes: %d came back, different", size, len(got))
				sum := md5.Sum(data)
				assert.Equal(t, hex.EncodeToString(sum[:])+"  "+name+"\n", run(t, b, "md5sum "+name))
			}
		})
	}
}

// TestStdinArrivesWhole feeds commands input that they consume without
// printing anything (the case where containerd closes an exec's input
// early): all of it arrives, every time.
func TestStdinArrivesWhole(t *testing.T) {
	b := newBackend(t, nil)
	ctx := testCtx(t)
	for i := range 40 {
		payload := fmt.Sprintf("line one %d\nline two %d\n", i, time.Now().UnixNano())
		if i%10 == 9 {
			payload = strings.Repeat(payload, 50000) // a couple of MiB
		}
		_, err := b.Exec(ctx, "cat > in.txt", &ab.ExecOptions{Stdin: strings.NewReader(payload)})
		require.NoError(t, err)
		got, err := b.Read(ctx, "in.txt")
		require.NoError(t, err)
		require.Equal(t, len(payload), len(got), "round %d: input lost", i)
		require.Equal(t, payload, string(got))
	}
}

// TestTimeoutKillsProcessGroup: a timeout and a cancelled context end the
// command and everything it started, inside the pod; the backend carries
// on.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	b := newBackend(t, nil)
	ctx := testCtx(t)
	start := time.Now()
	_, err := b.Exec(ctx, "echo started; sleep 731 & sleep 732 & (sleep 733; echo never) & sleep 734", &ab.ExecOptions{Timeout: time.Second})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, ab.ErrExecFailed)
	assert.Less(t, time.Since(start), 20*time.Second)
	waitNoProc(t, b, "sleep 73")

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	time.AfterFunc(500*time.Millisecond, cancel)
	_, err = b.Exec(cctx, "sleep 741 & sleep 742", nil)
	assert.ErrorIs(t, err, context.Canceled)
	waitNoProc(t, b, "sleep 74")
	assert.Equal(t, "alive\n", run(t, b, "echo alive"))
}

// TestProcessKillReachesGroup: Kill ends a background command's whole
// process group in the pod, and what a command leaves behind when it exits
// is killed too.
func TestProcessKillReachesGroup(t *testing.T) {
	b := newBackend(t, nil)
	ctx := testCtx(t)
	p, err := b.Start(ctx, "sleep 611 & (sleep 612 & sleep 613; wait) & sleep 614", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(run(t, b, "ps -o args"), "sleep 613") }, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, p.Kill())
	_, err = p.Wait(ctx)
	assert.ErrorIs(t, err, ab.ErrExecFailed)
	assert.Equal(t, ab.ProcessKilled, p.Info().State)
	assert.Equal(t, 137, p.Info().ExitCode)
	waitNoProc(t, b, "sleep 61")

	p, err = b.Start(ctx, "sleep 621 & echo started", nil)
	require.NoError(t, err)
	res, err := p.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, "started\n", string(res.Stdout))
	waitNoProc(t, b, "sleep 621")

	// No zombies pile up: the pod's first process reaps what is orphaned.
	for range 5 {
		run(t, b, "sleep 0.1 & true")
	}
	require.Eventually(t, func() bool { return !strings.Contains(run(t, b, "ps -o stat,args"), "Z ") }, 10*time.Second, 100*time.Millisecond)
}

// TestAttachLeavesPod: a backend attached to a pod does not delete it, a
// backend that created one does, and one that was detached does not.
func TestAttachLeavesPod(t *testing.T) {
	_, cs, ns := needCluster(t)
	ctx := testCtx(t)
	owner := newBackend(t, nil)
	cfg := testConfig(t)
	cfg.Template, cfg.Pod = kubernetes.PodTemplate{}, owner.Pod()
	attached, err := kubernetes.New(ctx, cfg)
	require.NoError(t, err)
	assert.Equal(t, kubernetes.ContainerName, attached.Container())
	require.NoError(t, attached.Write(ctx, "shared.txt", []byte("seen by both")))
	require.NoError(t, attached.Close())
	data, err := owner.Read(ctx, "shared.txt")
	require.NoError(t, err)
	assert.Equal(t, "seen by both", string(data))

	detached := newBackend(t, nil)
	detached.Detach()
	require.NoError(t, detached.Close())
	_, err = cs.CoreV1().Pods(ns).Get(ctx, detached.Pod(), metav1.GetOptions{})
	require.NoError(t, err, "a detached backend's pod was deleted")
	require.NoError(t, cs.CoreV1().Pods(ns).Delete(ctx, detached.Pod(), metav1.DeleteOptions{}))

	require.NoError(t, owner.Close())
	p, err := cs.CoreV1().Pods(ns).Get(ctx, owner.Pod(), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err) || p.DeletionTimestamp != nil, "Close left its pod: %v", err)
}

// TestNewFailsClearly: what cannot work fails with its code and the
// cluster's reason, and leaves no pod behind.
func TestNewFailsClearly(t *testing.T) {
	_, cs, ns := needCluster(t)
	ctx := testCtx(t)
	cfg := testConfig(t)
	cfg.Template.Image = "agentbackend-test:no-such-image"
	cfg.Template.Labels = map[string]string{"agentbackend.io/test": "missing-image"}
	_, err := kubernetes.New(ctx, cfg)
	assert.ErrorIs(t, err, ab.ErrExecError)
	assert.ErrorContains(t, err, "ErrImageNeverPull")
	require.Eventually(t, func() bool {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "agentbackend.io/test=missing-image"})
		return err == nil && !slices.ContainsFunc(list.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp == nil })
	}, time.Minute, 100*time.Millisecond, "the failed pod was not deleted")

	// The template's runtime class reaches the cluster (which has none by
	// that name here; a real one would run the pod under gVisor or Kata).
	cfg = testConfig(t)
	cfg.Template.RuntimeClassName = "no-such-class"
	_, err = kubernetes.New(ctx, cfg)
	assert.ErrorIs(t, err, ab.ErrExecError)
	assert.ErrorContains(t, err, `RuntimeClass "no-such-class" not found`)

	for _, bad := range []kubernetes.Config{
		{},
		{Pod: "x", Template: kubernetes.PodTemplate{Image: "y"}},
		{Template: kubernetes.PodTemplate{Image: "y", Name: "Not_A_Name"}},
		{Template: kubernetes.PodTemplate{Image: "y", RunAsRoot: true, RunAsUser: 5}},
		{Template: kubernetes.PodTemplate{Image: "y", Env: map[string]string{"LD_PRELOAD": "x"}}},
		{Template: kubernetes.PodTemplate{Image: "y", WorkspaceSizeLimit: "lots"}},
		{Template: kubernetes.PodTemplate{Image: "y"}, Env: map[string]string{"BAD NAME": "x"}},
	} {
		bad.REST = cfg.REST
		_, err := kubernetes.New(ctx, bad)
		assert.ErrorIs(t, err, ab.ErrInvalidConfiguration, "%+v", bad)
	}
	// A pod that does not exist cannot be attached to.
	cfg = testConfig(t)
	cfg.Template, cfg.Pod = kubernetes.PodTemplate{}, "no-such-pod"
	_, err = kubernetes.New(ctx, cfg)
	assert.ErrorIs(t, err, ab.ErrExecError)
}

// TestSearchMatchesGeneric: Glob and Grep run next to the data in the pod
// and give exactly what the generic implementation gives on the same files.
func TestSearchMatchesGeneric(t *testing.T) {
	ctx := testCtx(t)
	b := newBackend(t, nil)
	mem, _ := ab.NewMemory(ab.MemoryConfig{})
	defer mem.Close()
	files := map[string]string{
		"main.go": "package main\n\nfunc main() { println(\"Hello\") }\n", "util/u.go": "package util // hello\n",
		"util/u_test.go": "package util\n", ".gitignore": "build/\n", "build/gen.go": "package build // hello\n",
		".hidden/h.go": "hello", "docs/a.md": "say hello\nbye\n", "bin.dat": "hello\x00",
		"odd name with spaces.txt": "hello there", "deep/er/x.txt": "HELLO",
	}
	for p, c := range files {
		for _, w := range []ab.FileBackend{b, mem} {
			require.NoError(t, w.Write(ctx, p, []byte(c)))
		}
	}
	for _, opts := range []ab.GrepOptions{
		{Pattern: "hello"}, {Pattern: "hello", CaseInsensitive: true}, {Pattern: "hel+o", Mode: ab.GrepContent},
		{Pattern: "package", Mode: ab.GrepCount}, {Pattern: "hello", NoIgnore: true, Hidden: true}, {Pattern: "hello", Path: "util"},
	} {
		want, err := ab.Grep(ctx, mem, opts)
		require.NoError(t, err)
		got, err := ab.Grep(ctx, b, opts)
		require.NoError(t, err)
		assert.Equal(t, want.String(), got.String(), "Grep(%+v)", opts)
	}
	for _, pattern := range []string{"**/*.go", "*", "util/*", "**/x.txt", "{docs,util}/*"} {
		want, _ := ab.Glob(ctx, mem, pattern, ".")
		got, err := ab.Glob(ctx, b, pattern, ".")
		require.NoError(t, err)
		assert.Equal(t, want, got, "Glob(%q)", pattern)
	}
}

// TestMCPServerOnPod serves the pod's workspace as MCP tools, through a
// scope with permissions, the way the daemon does.
func TestMCPServerOnPod(t *testing.T) {
	ctx := testCtx(t)
	b := newBackend(t, nil)
	perms, err := ab.PermissionsFromJSON([]byte(`{"write": {"default": "allow", "rules": [{"pattern": "secret/**", "action": "deny"}]}}`))
	require.NoError(t, err)
	sc, err := b.Scope("tenant", &ab.ScopeConfig{Permissions: perms})
	require.NoError(t, err)
	defer sc.Close()
	cs, err := agentmcp.Connect(ctx, sc, nil)
	require.NoError(t, err)
	defer cs.Close()
	call := func(tool string, args map[string]any) (string, bool) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		require.NoError(t, err)
		var text strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text.WriteString(tc.Text)
			}
		}
		return text.String(), res.IsError
	}
	out, isErr := call("write_file", map[string]any{"path": "hello.txt", "content": "hi from MCP"})
	require.False(t, isErr, out)
	out, isErr = call("exec", map[string]any{"command": "cat hello.txt; pwd"})
	require.False(t, isErr, out)
	assert.Contains(t, out, "hi from MCP")
	assert.Contains(t, out, "/workspace/tenant")
	_, isErr = call("write_file", map[string]any{"path": "secret/x", "content": "no"})
	assert.True(t, isErr, "a denied write succeeded")
	out, isErr = call("run_in_background", map[string]any{"command": "echo bg"})
	require.False(t, isErr, out)
	out, isErr = call("grep", map[string]any{"pattern": "MCP"})
	require.False(t, isErr, out)
	assert.Contains(t, out, "hello.txt")
	_, err = b.Read(ctx, "secret/x")
	assert.True(t, errors.Is(err, ab.ErrReadFailed), "the denied file exists: %v", err)
}

// TestWhatAPodDoesNotFilter: what Local and Docker offer and a pod cannot
// is refused or said, never silently dropped. A network allow-list needs a
// proxy bound in the sandbox's network namespace from this host, which a
// cluster does not offer: a scope with network rules is refused
// (INVALID_CONFIGURATION), and a terminal is NOT_IMPLEMENTED.
func TestWhatAPodDoesNotFilter(t *testing.T) {
	b := newBackend(t, nil)
	_, err := b.Start(testCtx(t), "true", &ab.ExecOptions{Terminal: &ab.Terminal{}})
	assert.ErrorIs(t, err, ab.ErrNotImplemented)

	_, err = b.Scope("net", &ab.ScopeConfig{Permissions: &ab.Permissions{Network: ab.Policy{Default: ab.Deny}}})
	assert.Equal(t, ab.CodeInvalidConfiguration, ab.ErrorCode(err))
	assert.ErrorContains(t, err, "Permissions.Network: the scope's network rules cannot apply to its commands")
	assert.ErrorContains(t, err, "kubernetes container shares its network")
}

package kubernetes_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/testenv"
	"github.com/agentbackend/agentbackend/kubernetes"
)

// statusWatch records a backend's status changes.
func statusWatch(b ab.Backend) chan ab.StatusChange {
	ch := make(chan ab.StatusChange, 64)
	b.OnStatusChange(func(c ab.StatusChange) {
		select {
		case ch <- c:
		default:
		}
	})
	return ch
}

// waitStatus waits (boundedly) for a change to status to.
func waitStatus(t *testing.T, ch chan ab.StatusChange, to ab.Status) ab.StatusChange {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case c := <-ch:
			if c.To == to {
				return c
			}
		case <-timeout:
			t.Fatalf("status never became %s", to)
		}
	}
}

// TestPodDeletedMidCommand deletes the pod under a running command, a
// background process and the backend: each fails with CONNECTION_CLOSED,
// promptly, and the status says the backend is disconnected.
func TestPodDeletedMidCommand(t *testing.T) {
	b := newBackend(t, nil)
	_, cs, ns := needCluster(t)
	ctx := testCtx(t)
	changes := statusWatch(b)

	bg, err := b.Start(ctx, "echo started; sleep 600", nil)
	require.NoError(t, err)
	type result struct {
		res *ab.ExecResult
		err error
	}
	done := make(chan result, 1)
	running := &signalOnWrite{ch: make(chan struct{})}
	go func() {
		res, err := b.Exec(ctx, "echo running; sleep 600", &ab.ExecOptions{Stdout: running})
		done <- result{res, err}
	}()
	// Delete once both commands run.
	select {
	case <-running.ch:
	case <-time.After(time.Minute):
		t.Fatal("the command did not start")
	}
	out, _, _ := bg.Output(0)
	require.Equal(t, "started\n", string(out))
	start := time.Now()
	require.NoError(t, cs.CoreV1().Pods(ns).Delete(ctx, b.Pod(), metav1.DeleteOptions{}))

	select {
	case r := <-done:
		assert.ErrorIs(t, r.err, ab.ErrConnectionClosed, "Exec under a deleted pod: %v", r.err)
	case <-time.After(time.Minute):
		t.Fatal("Exec hung after its pod was deleted")
	}
	c := waitStatus(t, changes, ab.StatusDisconnected)
	assert.ErrorIs(t, c.Err, ab.ErrConnectionClosed)
	t.Logf("deleted → disconnected in %v: %v", time.Since(start), c.Err)

	_, err = bg.Wait(ctx)
	assert.ErrorIs(t, err, ab.ErrConnectionClosed, "background process under a deleted pod")
	assert.Equal(t, ab.ProcessLost, bg.Info().State)

	// Every later operation fails at once, with the same code.
	opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = b.Read(opCtx, "x")
	assert.ErrorIs(t, err, ab.ErrConnectionClosed)
	_, err = b.Exec(opCtx, "true", nil)
	assert.ErrorIs(t, err, ab.ErrConnectionClosed)
	assert.Equal(t, ab.StatusDisconnected, b.Status())
	require.NoError(t, b.Close())
	assert.Equal(t, ab.StatusDestroyed, b.Status())
}

// signalOnWrite closes ch on the first write.
type signalOnWrite struct{ ch chan struct{} }

func (w *signalOnWrite) Write(p []byte) (int, error) {
	select {
	case <-w.ch:
	default:
		close(w.ch)
	}
	return len(p), nil
}

// apiServerControl returns the script .ci/start-kubernetes leaves beside the
// kubeconfig to stop and start the API server.
func apiServerControl(t *testing.T) string {
	t.Helper()
	needCluster(t)
	script := filepath.Join(filepath.Dir(os.Getenv("KUBECONFIG")), "apiserver")
	_, err := os.Stat(script)
	testenv.Need(t, "kubernetes", err == nil, "no "+script+": the cluster was not started by .ci/start-kubernetes, so the test cannot restart its API server")
	return script
}

// TestAPIServerRestart stops the API server under a session and starts it
// again: meanwhile the status is reconnecting and an Exec waits (retrying
// with backoff) instead of failing; afterwards the session carries on with
// its files, and its watch follows the pod again.
func TestAPIServerRestart(t *testing.T) {
	script := apiServerControl(t)
	b := newBackend(t, nil)
	ctx := testCtx(t)
	require.NoError(t, b.Write(ctx, "kept.txt", []byte("before the restart")))
	changes := statusWatch(b)

	restarted := false
	t.Cleanup(func() {
		if !restarted { // never leave the cluster without its API server
			_ = exec.Command(script, "start").Run()
		}
	})
	out, err := exec.Command(script, "stop").CombinedOutput()
	require.NoError(t, err, "%s", out)
	waitStatus(t, changes, ab.StatusReconnecting)

	type result struct {
		res *ab.ExecResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := b.Exec(ctx, "cat kept.txt", nil)
		done <- result{res, err}
	}()
	// A new backend's pod is created once the server is back.
	created := make(chan error, 1)
	go func() {
		nb, err := kubernetes.New(ctx, testConfig(t))
		if err == nil {
			defer nb.Close()
			_, err = nb.Exec(ctx, "true", nil)
		}
		created <- err
	}()
	time.Sleep(time.Second) // the Exec and the creation retry meanwhile
	out, err = exec.Command(script, "start").CombinedOutput()
	restarted = err == nil
	require.NoError(t, err, "%s", out)

	select {
	case r := <-done:
		require.NoError(t, r.err, "Exec across the restart")
		assert.Equal(t, "before the restart", string(r.res.Stdout))
	case <-time.After(2 * time.Minute):
		t.Fatal("Exec across the restart never returned")
	}
	select {
	case err := <-created:
		require.NoError(t, err, "New across the restart")
	case <-time.After(2 * time.Minute):
		t.Fatal("New across the restart never returned")
	}
	waitStatus(t, changes, ab.StatusConnected)
	data, err := b.Read(ctx, "kept.txt")
	require.NoError(t, err)
	assert.Equal(t, "before the restart", string(data))

	// The watch is back: a delete is still noticed.
	_, cs, ns := needCluster(t)
	require.NoError(t, cs.CoreV1().Pods(ns).Delete(ctx, b.Pod(), metav1.DeleteOptions{}))
	c := waitStatus(t, changes, ab.StatusDisconnected)
	assert.True(t, errors.Is(c.Err, ab.ErrConnectionClosed), "%v", c.Err)
}

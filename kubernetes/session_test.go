package kubernetes_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/kubernetes"
)

func newManager(t *testing.T, edit func(*kubernetes.SessionConfig)) *kubernetes.SessionManager {
	t.Helper()
	cfg := kubernetes.SessionConfig{Config: testConfig(t), ID: "mgr-" + t.Name()[len(t.Name())-min(len(t.Name()), 20):]}
	cfg.ID = sanitizeLabel(cfg.ID)
	if edit != nil {
		edit(&cfg)
	}
	m, err := kubernetes.NewSessionManager(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m
}

// sanitizeLabel turns a test name into a label value.
func sanitizeLabel(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '-'
		}
	}
	return string(b)
}

// managedPods lists the pods of manager id, by label.
func managedPods(t *testing.T, id string, extra string) []corev1.Pod {
	t.Helper()
	_, cs, ns := needCluster(t)
	sel := kubernetes.LabelManager + "=" + id
	if extra != "" {
		sel += "," + extra
	}
	list, err := cs.CoreV1().Pods(ns).List(testCtx(t), metav1.ListOptions{LabelSelector: sel})
	require.NoError(t, err)
	var live []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

// TestSessionsReattachAfterRestart: a session's pod outlives the manager
// that made it, and a new manager with the same ID (a restarted program)
// gives the session its pod back, files and all, found by label.
func TestSessionsReattachAfterRestart(t *testing.T) {
	ctx := testCtx(t)
	first := newManager(t, nil)
	alice, err := first.GetOrCreate(ctx, "alice")
	require.NoError(t, err)
	bob, err := first.GetOrCreate(ctx, "bob")
	require.NoError(t, err)
	assert.NotEqual(t, alice.Pod(), bob.Pod(), "one pod per session")
	again, err := first.GetOrCreate(ctx, "alice")
	require.NoError(t, err)
	assert.Same(t, alice, again)
	require.NoError(t, alice.Write(ctx, "notes.txt", []byte("alice's")))
	alicePod := alice.Pod()

	// The program "restarts": the manager goes without deleting anything.
	require.NoError(t, first.Close())
	_, err = first.GetOrCreate(ctx, "alice")
	assert.ErrorIs(t, err, ab.ErrDestroyed)

	second := newManager(t, nil)
	require.Equal(t, first.ID(), second.ID())
	back, err := second.GetOrCreate(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, alicePod, back.Pod(), "the session's pod, found by label")
	data, err := back.Read(ctx, "notes.txt")
	require.NoError(t, err)
	assert.Equal(t, "alice's", string(data))
	assert.Len(t, managedPods(t, second.ID(), kubernetes.LabelSession), 2)

	// A session whose pod was deleted underneath gets a new one.
	_, cs, ns := needCluster(t)
	require.NoError(t, cs.CoreV1().Pods(ns).Delete(ctx, back.Pod(), metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return back.Status() == ab.StatusDisconnected }, time.Minute, 50*time.Millisecond)
	fresh, err := second.GetOrCreate(ctx, "alice")
	require.NoError(t, err)
	assert.NotEqual(t, alicePod, fresh.Pod())
	run(t, fresh, "true")

	// Shutdown deletes every pod of the manager.
	require.NoError(t, second.Shutdown(ctx))
	assert.Empty(t, managedPods(t, second.ID(), ""))
}

// TestSessionsIdleReaped: idle sessions lose their pods, busy ones do not,
// and a manager reaps the idle pods an earlier process left.
func TestSessionsIdleReaped(t *testing.T) {
	ctx := testCtx(t)
	m := newManager(t, func(c *kubernetes.SessionConfig) { c.IdleTimeout = 200 * time.Millisecond })
	idle, err := m.GetOrCreate(ctx, "idle")
	require.NoError(t, err)
	busy, release, err := m.Acquire(ctx, "busy")
	require.NoError(t, err)
	defer release()
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, 1, m.CleanupIdle())
	assert.Equal(t, ab.StatusDestroyed, idle.Status())
	run(t, busy, "true")
	assert.Equal(t, ab.PoolStats{Total: 1, Active: 1}, m.Stats())

	// A pod an earlier process left idle (its last use written on it) is
	// reaped by a manager with the same ID; one used lately is not.
	_, cs, ns := needCluster(t)
	earlier := newManager(t, func(c *kubernetes.SessionConfig) { c.ID += "-2" })
	left, err := earlier.GetOrCreate(ctx, "left")
	require.NoError(t, err)
	recent, err := earlier.GetOrCreate(ctx, "recent")
	require.NoError(t, err)
	require.NoError(t, earlier.Close())
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, left.Pod(), metav1.GetOptions{})
	require.NoError(t, err)
	pod.Annotations[kubernetes.AnnotationLastUsed] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	_, err = cs.CoreV1().Pods(ns).Update(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)
	later := newManager(t, func(c *kubernetes.SessionConfig) { c.ID += "-2"; c.IdleTimeout = time.Minute })
	assert.Equal(t, 1, later.CleanupIdle())
	var names []string
	for _, p := range managedPods(t, later.ID(), kubernetes.LabelSession) {
		names = append(names, p.Name)
	}
	assert.Equal(t, []string{recent.Pod()}, names)
}

// TestWarmPool: the pool is filled to its bound and no further, a new
// session takes a running pod from it (no scheduling wait), and the pool
// is refilled.
func TestWarmPool(t *testing.T) {
	ctx := testCtx(t)
	m := newManager(t, func(c *kubernetes.SessionConfig) { c.WarmPods = 2 })
	warm := kubernetes.LabelWarm + "=true"
	runningWarm := func() []corev1.Pod {
		var running []corev1.Pod
		for _, p := range managedPods(t, m.ID(), warm) {
			if p.Status.Phase == corev1.PodRunning {
				running = append(running, p)
			}
		}
		return running
	}
	require.Eventually(t, func() bool { return len(runningWarm()) == 2 }, 2*time.Minute, 100*time.Millisecond)
	warmNames := map[string]bool{}
	for _, p := range runningWarm() {
		warmNames[p.Name] = true
	}

	b, err := m.GetOrCreate(ctx, "s1")
	require.NoError(t, err)
	assert.True(t, warmNames[b.Pod()], "the session got a warm pod")
	assert.Equal(t, "ok\n", run(t, b, "echo ok"))
	// Refilled to two, never above.
	require.Eventually(t, func() bool { return len(runningWarm()) == 2 }, 2*time.Minute, 100*time.Millisecond)
	for range 10 {
		assert.LessOrEqual(t, len(managedPods(t, m.ID(), warm)), 2)
		time.Sleep(50 * time.Millisecond)
	}
	// Three more sessions at once: each gets its own pod.
	pods := map[string]bool{b.Pod(): true}
	for _, id := range []string{"s2", "s3", "s4"} {
		s, err := m.GetOrCreate(ctx, id)
		require.NoError(t, err)
		assert.False(t, pods[s.Pod()], "two sessions share pod %s", s.Pod())
		pods[s.Pod()] = true
	}
	require.Eventually(t, func() bool { return len(managedPods(t, m.ID(), warm)) == 2 }, 2*time.Minute, 100*time.Millisecond)
}

// TestSessionClaimSuspendResume gives a session a PersistentVolumeClaim:
// Suspend deletes its pod and keeps the claim, the next GetOrCreate resumes
// it on a new pod with its files, DeleteSession deletes the claim. The test
// cluster has no provisioner, so the test makes the volume: a host path,
// bound through a storage class of its own.
func TestSessionClaimSuspendResume(t *testing.T) {
	_, cs, ns := needCluster(t)
	ctx := testCtx(t)
	class := "agentbe-" + ns
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o1777)) // host paths ignore fsGroup: let nobody write
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: class},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:              class,
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}},
		},
	}
	_, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cs.CoreV1().PersistentVolumes().Delete(context.Background(), class, metav1.DeleteOptions{})
	})

	m := newManager(t, func(c *kubernetes.SessionConfig) {
		c.WorkspaceClaims, c.ClaimStorageClass, c.ClaimSize = true, class, "1Gi"
	})
	first, err := m.GetOrCreate(ctx, "carol")
	require.NoError(t, err)
	require.NoError(t, first.Write(ctx, "work/draft.txt", []byte("kept across pods")))
	firstPod := first.Pod()

	require.NoError(t, m.Suspend(ctx, "carol"))
	assert.Equal(t, ab.StatusDestroyed, first.Status())
	claims, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelManager + "=" + m.ID()})
	require.NoError(t, err)
	require.Len(t, claims.Items, 1, "the claim is kept")

	resumed, err := m.GetOrCreate(ctx, "carol")
	require.NoError(t, err)
	assert.NotEqual(t, firstPod, resumed.Pod(), "a new pod")
	data, err := resumed.Read(ctx, "work/draft.txt")
	require.NoError(t, err)
	assert.Equal(t, "kept across pods", string(data))

	require.NoError(t, m.DeleteSession(ctx, "carol"))
	require.Eventually(t, func() bool {
		claims, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelManager + "=" + m.ID()})
		return err == nil && len(claims.Items) == 0
	}, time.Minute, 100*time.Millisecond, "the claim was not deleted")
}

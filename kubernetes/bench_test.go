package kubernetes_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/agentbackend/agentbackend/kubernetes"
)

// rawExec runs argv in the backend's pod with bare client-go (a WebSocket
// executor, as the backend uses), the baseline of the benchmarks.
func rawExec(b testing.TB, k *kubernetes.Backend, stdin []byte, argv ...string) []byte {
	cfg, cs, _ := needCluster(b)
	req := cs.CoreV1().RESTClient().Post().Namespace(k.Namespace()).Resource("pods").Name(k.Pod()).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: k.Container(), Command: argv, Stdin: stdin != nil, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		b.Fatal(err)
	}
	var out, errOut bytes.Buffer
	opts := remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}
	if stdin != nil {
		opts.Stdin = bytes.NewReader(stdin)
	}
	if err := ex.StreamWithContext(context.Background(), opts); err != nil {
		b.Fatalf("%v: %v: %s", argv, err, errOut.Bytes())
	}
	return out.Bytes()
}

// BenchmarkKubernetesExec compares an Exec of `true` with the same exec
// (/bin/sh -c true) made with bare client-go on the same pod (target:
// within 1.1x).
func BenchmarkKubernetesExec(b *testing.B) {
	k := newBackend(b, nil)
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			rawExec(b, k, nil, "/bin/sh", "-c", "true")
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Exec(ctx, "true", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var benchSizes = []struct {
	name string
	size int
}{{"4KiB", 4 << 10}, {"16MiB", 16 << 20}}

// BenchmarkKubernetesWrite writes a file with the backend, beside a bare
// client-go exec of `cat > file` fed the same bytes.
func BenchmarkKubernetesWrite(b *testing.B) {
	k := newBackend(b, nil)
	ctx := context.Background()
	for _, s := range benchSizes {
		data := bytes.Repeat([]byte{0xa5}, s.size)
		b.Run(s.name, func(b *testing.B) {
			b.Run("raw", func(b *testing.B) {
				b.SetBytes(int64(s.size))
				for b.Loop() {
					rawExec(b, k, data, "/bin/sh", "-c", "cat > /workspace/raw.bin; exit $?")
				}
			})
			b.Run("sdk", func(b *testing.B) {
				b.SetBytes(int64(s.size))
				for b.Loop() {
					if err := k.Write(ctx, "bench.bin", data); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkKubernetesRead reads a file with the backend, beside a bare
// client-go exec of `cat file`.
func BenchmarkKubernetesRead(b *testing.B) {
	k := newBackend(b, nil)
	ctx := context.Background()
	for _, s := range benchSizes {
		data := bytes.Repeat([]byte{0x5a}, s.size)
		name := fmt.Sprintf("read-%s.bin", s.name)
		if err := k.Write(ctx, name, data); err != nil {
			b.Fatal(err)
		}
		b.Run(s.name, func(b *testing.B) {
			b.Run("raw", func(b *testing.B) {
				b.SetBytes(int64(s.size))
				for b.Loop() {
					if got := rawExec(b, k, nil, "cat", "/workspace/"+name); len(got) != s.size {
						b.Fatalf("read %d bytes", len(got))
					}
				}
			})
			b.Run("sdk", func(b *testing.B) {
				b.SetBytes(int64(s.size))
				for b.Loop() {
					if got, err := k.Read(ctx, name); err != nil || len(got) != s.size {
						b.Fatal(len(got), err)
					}
				}
			})
		})
	}
}

// BenchmarkKubernetesSessionFirstExec measures a new session up to the end
// of its first command: cold (a pod is created, scheduled and started) and
// from a warm pool (a running pod is taken).
func BenchmarkKubernetesSessionFirstExec(b *testing.B) {
	for _, warm := range []int{0, 1} {
		name := map[int]string{0: "cold", 1: "warm"}[warm]
		b.Run(name, func(b *testing.B) {
			cfg := kubernetes.SessionConfig{Config: testConfig(b), WarmPods: warm}
			m, err := kubernetes.NewSessionManager(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Shutdown(context.Background())
			ctx := context.Background()
			i := 0
			for b.Loop() {
				if warm > 0 {
					// A pool is filled ahead of need: let the node settle
					// after starting the pod, as it would have long before a
					// session comes.
					b.StopTimer()
					waitWarm(b, m)
					time.Sleep(time.Second)
					b.StartTimer()
				}
				i++
				s, err := m.GetOrCreate(ctx, fmt.Sprintf("s%d", i))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Exec(ctx, "true", nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = m.DeleteSession(ctx, fmt.Sprintf("s%d", i))
				b.StartTimer()
			}
		})
	}
}

// waitWarm waits until the manager's warm pool has a running pod.
func waitWarm(b testing.TB, m *kubernetes.SessionManager) {
	_, cs, ns := needCluster(b)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1ListWarm(m.ID()))
		if err == nil {
			for _, p := range list.Items {
				if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatal("no warm pod ran")
}

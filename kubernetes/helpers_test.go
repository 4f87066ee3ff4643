package kubernetes_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/testenv"
	"github.com/agentbackend/agentbackend/kubernetes"
)

// The tests run against the cluster $KUBECONFIG names (.ci/start-kubernetes
// starts one), each run in a namespace of its own that TestMain deletes.
// The image is the Docker tests' busybox image, which start-kubernetes
// imports into the cluster's containerd: no registry.
const testImage = "agentbackend-test:busybox"

var (
	clusterOnce sync.Once
	clusterCfg  *rest.Config
	clusterCS   *k8s.Clientset
	clusterNS   string
	clusterWhy  string
)

// goroutines of client-go that live as long as the program.
var leakOptions = []goleak.Option{
	goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
	// A WebSocket exec's heartbeat outlives its connection until its next
	// ping fails, which on a connection the API server dropped (the restart
	// test) can take its write deadline, a minute. Its exec, connection and
	// reader are gone: those would still show if an exec leaked.
	goleak.IgnoreTopFunction("k8s.io/client-go/tools/remotecommand.(*heartbeat).start"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
}

func TestMain(m *testing.M) {
	code := m.Run()
	if clusterNS != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = clusterCS.CoreV1().Namespaces().Delete(ctx, clusterNS, metav1.DeleteOptions{})
		cancel()
	}
	if code == 0 {
		// A WebSocket exec whose connection was dropped (a kill, a timeout)
		// keeps its heartbeat until its next tick, up to 5 s later: look
		// again for that long before calling anything a leak.
		var err error
		for deadline := time.Now().Add(7 * time.Second); ; {
			if err = goleak.Find(leakOptions...); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// needCluster skips (or, when AGENTBE_REQUIRE names kubernetes, fails) t
// unless a cluster answers, and returns its configuration, a client and the
// run's namespace.
func needCluster(t testing.TB) (*rest.Config, *k8s.Clientset, string) {
	t.Helper()
	clusterOnce.Do(func() {
		if os.Getenv("KUBECONFIG") == "" {
			clusterWhy = "KUBECONFIG is not set (.ci/start-kubernetes starts a cluster)"
			return
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
		if err != nil {
			clusterWhy = err.Error()
			return
		}
		cs, err := k8s.NewForConfig(cfg)
		if err != nil {
			clusterWhy = err.Error()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "agentbe-test-"},
		}, metav1.CreateOptions{})
		if err != nil {
			clusterWhy = "the cluster does not answer: " + err.Error()
			return
		}
		// Pods need the namespace's default service account.
		for ctx.Err() == nil {
			if _, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		clusterCfg, clusterCS, clusterNS = cfg, cs, ns.Name
	})
	testenv.Need(t, "kubernetes", clusterNS != "", clusterWhy)
	return clusterCfg, clusterCS, clusterNS
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testConfig is the configuration of a test backend.
func testConfig(t testing.TB) kubernetes.Config {
	cfg, _, ns := needCluster(t)
	return kubernetes.Config{
		REST:      cfg,
		Namespace: ns,
		Template:  kubernetes.PodTemplate{Image: testImage, ImagePullPolicy: corev1.PullNever},
	}
}

// newBackend creates a backend from testConfig changed by edit (may be
// nil), closed when the test ends.
func newBackend(t testing.TB, edit func(*kubernetes.Config)) *kubernetes.Backend {
	t.Helper()
	cfg := testConfig(t)
	if edit != nil {
		edit(&cfg)
	}
	b, err := kubernetes.New(testCtx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// run runs command on b and returns its stdout, failing the test on error.
func run(t testing.TB, b ab.FileBackend, command string) string {
	t.Helper()
	res, err := b.Exec(testCtx(t), command, nil)
	require.NoError(t, err, "exec %q", command)
	return string(res.Stdout)
}

// metav1ListWarm lists the warm pods of manager id.
func metav1ListWarm(id string) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: kubernetes.LabelManager + "=" + id + "," + kubernetes.LabelWarm + "=true"}
}

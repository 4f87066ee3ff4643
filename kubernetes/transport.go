package kubernetes

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	ab "github.com/agentbackend/agentbackend"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// transport is the agentbackend.ContainerTransport of a pod: every process
// is a pods/exec through the API server. It also follows the pod (see
// watch.go) and deletes it on Close when it created it.
type transport struct {
	rest      *rest.Config
	cs        kubernetes.Interface
	ns        string
	pod       string
	container string
	retryFor  time.Duration
	created   bool        // Close deletes the pod
	keep      atomic.Bool // Detach: Close leaves the pod
	spdyOnly  atomic.Bool // the API server refused WebSocket once: go straight to SPDY

	w *watcher // follows the pod; nil until the pod exists
}

var (
	_ ab.ContainerTransport = (*transport)(nil)
	_ ab.ContainerWatcher   = (*transport)(nil)
)

func newTransport(cfg *rest.Config, cs kubernetes.Interface, ns string, retryFor time.Duration) *transport {
	return &transport{rest: cfg, cs: cs, ns: ns, retryFor: retryFor}
}

// create creates the pod and waits until it runs.
func (t *transport) create(ctx context.Context, pod *corev1.Pod) error {
	var created *corev1.Pod
	err := retryAPI(ctx, t.retryFor, func() (err error) {
		created, err = t.cs.CoreV1().Pods(t.ns).Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return apiErr("create pod", err)
	}
	t.pod, t.container, t.created = created.Name, ContainerName, true
	t.w = startWatcher(t, created)
	return t.w.waitRunning(ctx)
}

// attach checks that the pod runs and picks its container.
func (t *transport) attach(ctx context.Context, name, container string) error {
	var pod *corev1.Pod
	err := retryAPI(ctx, t.retryFor, func() (err error) {
		pod, err = t.cs.CoreV1().Pods(t.ns).Get(ctx, name, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return apiErr("get pod "+name, err)
	}
	if container == "" && len(pod.Spec.Containers) > 0 {
		container = pod.Spec.Containers[0].Name
	}
	t.pod, t.container = pod.Name, container
	t.w = startWatcher(t, pod)
	return t.w.waitRunning(ctx)
}

// adopt takes over a pod that runs (a session's, a warm one): Close
// deletes it unless Detach says otherwise.
func (t *transport) adopt(pod *corev1.Pod) {
	t.pod, t.container, t.created = pod.Name, ContainerName, true
	t.w = startWatcher(t, pod)
}

// Watch passes the backend's status reports to the watcher.
func (t *transport) Watch(report func(ab.Status, error)) { t.w.setReport(report) }

// Close stops following the pod and deletes it if this backend created it
// and was not detached.
func (t *transport) Close() error {
	if t.w != nil {
		t.w.stop()
	}
	if !t.created || t.keep.Load() || t.pod == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := t.cs.CoreV1().Pods(t.ns).Delete(ctx, t.pod, deleteNow())
	if err != nil && !apierrors.IsNotFound(err) {
		return apiErr("delete pod "+t.pod, err)
	}
	return nil
}

// Start starts cmd with a pods/exec. The exec connects in the background:
// a failure to connect is retried with backoff (the API server may be
// restarting) for up to retryFor within ctx, and otherwise reported by
// Wait.
func (t *transport) Start(ctx context.Context, cmd *ab.ContainerCommand) (ab.ContainerProcess, error) {
	if err := t.w.goneErr(); err != nil {
		return nil, err
	}
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &execProc{cancel: cancel, done: make(chan struct{})}
	// Until the exec is connected, ctx may abandon it; after, only Close.
	stopEarly := context.AfterFunc(ctx, func() {
		if !p.answer.connected.Load() {
			cancel()
		}
	})
	go func() {
		defer close(p.done)
		defer stopEarly()
		p.code, p.err = t.run(streamCtx, cmd, &p.answer)
	}()
	return p, nil
}

// run runs one exec to its end, connecting again while the connection
// cannot be made.
func (t *transport) run(ctx context.Context, cmd *ab.ContainerCommand, answer *execAnswer) (int, error) {
	opts := remotecommand.StreamOptions{Stdin: cmd.Stdin, Stdout: cmd.Stdout, Stderr: cmd.Stderr}
	deadline := time.Now().Add(t.retryFor)
	delay := 50 * time.Millisecond
	for {
		ex, err := t.executor(cmd.Argv, cmd.Stdin != nil, answer)
		if err != nil {
			return -1, err
		}
		answer.status.Store(0)
		err = ex.StreamWithContext(ctx, opts)
		var exit exec.CodeExitError
		status, refused := answer.refusal(err)
		switch {
		case err == nil:
			return 0, nil
		case errors.As(err, &exit):
			if exit.Code >= 128 {
				t.w.confirm(ctx) // killed: by us, or by the pod's end?
			}
			return exit.Code, nil
		case answer.connected.Load():
			// The connection broke off mid-command: the API server
			// restarted, or the pod went away.
			t.w.confirm(ctx)
			return -1, t.w.orGone(err)
		case refused && status == http.StatusNotFound:
			t.w.confirm(ctx)
			return -1, t.w.orGone(err)
		case refused && status < 500 && status != http.StatusTooManyRequests,
			!refused && httpstream.IsUpgradeFailure(err),
			ctx.Err() != nil, time.Now().After(deadline):
			// Refused for a reason the server gave, or out of time. Else
			// the server could not be reached or was not ready: again.
			return -1, t.w.orGone(err)
		}
		t.w.unreachable(err)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return -1, ctx.Err()
		case <-timer.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// executor returns a WebSocket executor with SPDY as its fallback (or SPDY
// alone once WebSocket was refused), for one exec of argv, whose answer
// (see upgradeWatcher) goes to answer: once connected, the command may run,
// and must not be started again.
func (t *transport) executor(argv []string, stdin bool, answer *execAnswer) (remotecommand.Executor, error) {
	req := t.cs.CoreV1().RESTClient().Post().Namespace(t.ns).Resource("pods").Name(t.pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: t.container, Command: argv, Stdin: stdin, Stdout: true, Stderr: true,
		}, scheme.ParameterCodec)
	cfg := *t.rest
	wrap := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if wrap != nil {
			rt = wrap(rt)
		}
		return upgradeWatcher{rt, answer}
	}
	spdy, err := remotecommand.NewSPDYExecutor(&cfg, "POST", req.URL())
	if err != nil || t.spdyOnly.Load() {
		return spdy, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(&cfg, "GET", req.URL().String())
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		// WebSocket refused: the server may not speak it, or (before
		// Kubernetes authorizes WebSocket execs as "create") the role may
		// allow pods/exec create but not get. SPDY's POST needs create.
		if status, _ := answer.refusal(err); httpstream.IsUpgradeFailure(err) && status != http.StatusNotFound {
			t.spdyOnly.Store(true)
			return true
		}
		return httpstream.IsHTTPSProxyError(err)
	})
}

// upgradeWatcher notes how the API server answered an exec's upgrade
// request: switched to a stream protocol (the command may run from then
// on), or refused with an HTTP status (SPDY's errors keep only its text).
type upgradeWatcher struct {
	rt     http.RoundTripper
	answer *execAnswer
}

// execAnswer is what upgradeWatcher saw.
type execAnswer struct {
	connected atomic.Bool
	status    atomic.Int32 // the status of a refusal
}

func (u upgradeWatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := u.rt.RoundTrip(req)
	if err == nil {
		if resp.StatusCode == http.StatusSwitchingProtocols {
			u.answer.connected.Store(true)
		} else {
			u.answer.status.Store(int32(resp.StatusCode))
		}
	}
	return resp, err
}

// refusal returns the HTTP status the API server refused an exec with, if
// it did: from a WebSocket upgrade failure's cause (which does not unwrap),
// else as upgradeWatcher saw it.
func (a *execAnswer) refusal(err error) (int32, bool) {
	var upgrade *httpstream.UpgradeFailureError
	if errors.As(err, &upgrade) {
		err = upgrade.Cause
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code, true
	}
	code := a.status.Load()
	return code, code != 0
}

// execProc is one exec.
type execProc struct {
	cancel    context.CancelFunc
	answer    execAnswer
	done      chan struct{}
	code      int
	err       error
	closeOnce sync.Once
}

func (p *execProc) Wait() (int, error) {
	<-p.done
	return p.code, p.err
}

func (p *execProc) Close() error {
	p.closeOnce.Do(p.cancel)
	return nil
}

package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	ab "github.com/agentbackend/agentbackend"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// watcher follows one pod with a watch for the backend's life: it tells
// New when the pod runs, tells the backend when the API server cannot be
// reached (reconnecting) and when the pod is gone for good (deleted,
// evicted, its container ended), and answers execs that fail whether the
// pod is to blame. A watch that breaks is made again with backoff, from the
// last resource version seen.
type watcher struct {
	t      *transport
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	running  bool
	gone     error         // why the pod is gone for good; nil while it lives
	waitErr  error         // why the pod will not run (an image that cannot be pulled, ...)
	changed  chan struct{} // closed and replaced on every change
	report   func(ab.Status, error)
	status   ab.Status // last status reported
	lastSeen string    // resource version
}

// errPodGone is wrapped by the cause of a gone pod.
var errPodGone = errors.New("the pod is gone")

func startWatcher(t *transport, pod *corev1.Pod) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{t: t, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}), status: ab.StatusConnected}
	w.observe(pod)
	go w.loop(ctx)
	return w
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
}

func (w *watcher) setReport(report func(ab.Status, error)) {
	w.mu.Lock()
	w.report = report
	gone := w.gone
	w.mu.Unlock()
	if gone != nil {
		report(ab.StatusDisconnected, gone)
	}
}

// waitRunning waits, within ctx, until the pod runs, and fails when it
// will not.
func (w *watcher) waitRunning(ctx context.Context) error {
	for {
		w.mu.Lock()
		running, gone, waitErr, changed := w.running, w.gone, w.waitErr, w.changed
		w.mu.Unlock()
		switch {
		case gone != nil:
			return &ab.Error{Code: ab.CodeExecError, Op: "connect", Err: gone, Message: "kubernetes: pod " + w.t.pod + ": " + gone.Error()}
		case waitErr != nil:
			return &ab.Error{Code: ab.CodeExecError, Op: "connect", Err: waitErr, Message: "kubernetes: pod " + w.t.pod + " will not run: " + waitErr.Error()}
		case running:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return &ab.Error{Code: ab.CodeExecError, Op: "connect", Err: ctx.Err(),
				Message: fmt.Sprintf("kubernetes: pod %s did not run in time: %s", w.t.pod, w.describe())}
		}
	}
}

// describe says what the pod waits for, for a timeout's message.
func (w *watcher) describe() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pod, err := w.t.cs.CoreV1().Pods(w.t.ns).Get(ctx, w.t.pod, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return fmt.Sprintf("%s: %s %s", c.Type, c.Reason, c.Message)
		}
	}
	return "phase " + string(pod.Status.Phase)
}

// goneErr returns the CONNECTION_CLOSED error once the pod is gone.
func (w *watcher) goneErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gone == nil {
		return nil
	}
	return goneError(w.t.pod, w.gone)
}

func goneError(pod string, cause error) error {
	return &ab.Error{Code: ab.CodeConnectionClosed, Op: "exec", Err: cause,
		Message: "kubernetes: pod " + pod + ": " + cause.Error()}
}

// orGone returns the pod's loss instead of err once the pod is gone.
func (w *watcher) orGone(err error) error {
	if gerr := w.goneErr(); gerr != nil {
		return gerr
	}
	return err
}

// confirm asks the API server about the pod after an exec ended badly, so
// that a pod deleted underneath is known before the failure is reported.
func (w *watcher) confirm(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pod, err := w.t.cs.CoreV1().Pods(w.t.ns).Get(ctx, w.t.pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		w.markGone(fmt.Errorf("%w: deleted", errPodGone))
	case err == nil:
		w.observe(pod)
	}
}

// unreachable notes that the API server could not be reached.
func (w *watcher) unreachable(cause error) { w.setStatus(ab.StatusReconnecting, cause) }

// reachable notes that it can be again.
func (w *watcher) reachable() { w.setStatus(ab.StatusConnected, nil) }

func (w *watcher) setStatus(s ab.Status, cause error) {
	w.mu.Lock()
	if w.gone != nil || w.status == s {
		w.mu.Unlock()
		return
	}
	w.status = s
	report := w.report
	w.mu.Unlock()
	if report != nil {
		report(s, cause)
	}
}

// observe takes in a version of the pod.
func (w *watcher) observe(pod *corev1.Pod) {
	if pod.ResourceVersion != "" {
		w.mu.Lock()
		w.lastSeen = pod.ResourceVersion
		w.mu.Unlock()
	}
	if cause := podGone(pod, w.t.container); cause != nil {
		w.markGone(cause)
		return
	}
	w.mu.Lock()
	w.running = podRunning(pod, w.t.container)
	if !w.running {
		w.waitErr = podStuck(pod)
	}
	w.broadcastLocked()
	w.mu.Unlock()
}

func (w *watcher) broadcastLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// markGone records that the pod is gone for good and tells the backend.
func (w *watcher) markGone(cause error) {
	w.mu.Lock()
	if w.gone != nil {
		w.mu.Unlock()
		return
	}
	w.gone = cause
	w.status = ab.StatusDisconnected
	w.broadcastLocked()
	report := w.report
	w.mu.Unlock()
	if report != nil {
		report(ab.StatusDisconnected, goneError(w.t.pod, cause))
	}
}

// podRunning reports whether the pod runs with the container up.
func podRunning(pod *corev1.Pod, container string) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == container {
			return cs.State.Running != nil
		}
	}
	return false
}

// podGone returns why the pod can no longer serve, or nil.
func podGone(pod *corev1.Pod, container string) error {
	if pod.DeletionTimestamp != nil {
		return fmt.Errorf("%w: deleted", errPodGone)
	}
	switch pod.Status.Phase {
	case corev1.PodFailed, corev1.PodSucceeded:
		why := string(pod.Status.Phase)
		if pod.Status.Reason != "" {
			why = pod.Status.Reason // Evicted, ...
		}
		if pod.Status.Message != "" {
			why += ": " + pod.Status.Message
		}
		return fmt.Errorf("%w: %s", errPodGone, why)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == container && cs.State.Terminated != nil {
			t := cs.State.Terminated
			return fmt.Errorf("%w: its container ended (%s, exit code %d)", errPodGone, t.Reason, t.ExitCode)
		}
	}
	return nil
}

// podStuck returns why a pod that does not run yet never will without
// someone's help, or nil while it may.
func podStuck(pod *corev1.Pod) error {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Waiting == nil {
			continue
		}
		switch cs.State.Waiting.Reason {
		case "ErrImageNeverPull", "InvalidImageName", "ImagePullBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
			return fmt.Errorf("%s: %s", cs.State.Waiting.Reason, cs.State.Waiting.Message)
		}
	}
	return nil
}

// loop watches the pod until stop. A watch ends when the API server closes
// it (its timeout), breaks when the server goes away; either way it is made
// again from the last version seen, with backoff while that fails.
func (w *watcher) loop(ctx context.Context) {
	defer close(w.done)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		if w.goneErr() != nil {
			return // nothing more to learn
		}
		w.mu.Lock()
		rv := w.lastSeen
		w.mu.Unlock()
		wi, err := w.t.cs.CoreV1().Pods(w.t.ns).Watch(ctx, metav1.ListOptions{
			FieldSelector:       fields.OneTermEqualSelector("metadata.name", w.t.pod).String(),
			ResourceVersion:     rv,
			AllowWatchBookmarks: true,
		})
		if err == nil && !w.relist(ctx) {
			wi.Stop()
			err = errors.New("relist failed")
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.unreachable(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		w.reachable()
		delay = 100 * time.Millisecond
		w.consume(ctx, wi)
		wi.Stop()
	}
}

// relist reads the pod once after (re)connecting: what happened while no
// watch ran (a delete whose event is compacted away) is not missed.
func (w *watcher) relist(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pod, err := w.t.cs.CoreV1().Pods(w.t.ns).Get(rctx, w.t.pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		w.markGone(fmt.Errorf("%w: deleted", errPodGone))
		return true
	case err != nil:
		w.unreachable(err)
		return false
	}
	w.observe(pod)
	return true
}

// consume takes in a watch's events until it ends.
func (w *watcher) consume(ctx context.Context, wi watch.Interface) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					w.observe(pod)
				}
			case watch.Deleted:
				w.markGone(fmt.Errorf("%w: deleted", errPodGone))
				return
			case watch.Bookmark:
				if m, err := metaOf(ev.Object); err == nil {
					w.mu.Lock()
					w.lastSeen = m
					w.mu.Unlock()
				}
			case watch.Error:
				if status, ok := ev.Object.(*metav1.Status); ok && status.Code == http.StatusGone {
					w.mu.Lock()
					w.lastSeen = "" // too old: start from now (relist covers the gap)
					w.mu.Unlock()
				}
				return
			}
		}
	}
}

func metaOf(obj any) (string, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		return pod.ResourceVersion, nil
	}
	return "", errors.New("not a pod")
}

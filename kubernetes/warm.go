package kubernetes

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The warm pool: SessionConfig.WarmPods pods of the template, created
// ahead of need and labelled LabelWarm. A new session takes one by
// relabelling it (an update conditional on the pod's resource version, so
// two managers cannot take the same pod), which wakes the refiller. The
// count is read from the cluster, so the pool stays bounded across
// restarts of the program.

// warmLabels are the labels of this manager's warm pods.
func (m *SessionManager) warmLabels() map[string]string {
	return map[string]string{LabelManaged: "true", LabelManager: m.id, LabelTemplate: m.digest, LabelWarm: "true"}
}

// wake asks the refiller to top the pool up.
func (m *SessionManager) wake() {
	select {
	case m.refill <- struct{}{}:
	default:
	}
}

// warmLoop tops the pool up whenever woken, and retries a failed top-up.
func (m *SessionManager) warmLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-m.stop
		cancel()
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-m.stop:
			retry.Stop()
			return
		case <-m.refill:
		case <-retry.C:
		}
		if err := m.fillWarm(ctx); err != nil && ctx.Err() == nil {
			retry.Reset(5 * time.Second)
		}
	}
}

// warmPods lists the live warm pods.
func (m *SessionManager) warmPods(ctx context.Context) ([]corev1.Pod, error) {
	list, err := m.cs.CoreV1().Pods(m.ns).List(ctx, metav1.ListOptions{LabelSelector: selector(m.warmLabels())})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list.Items, func(p corev1.Pod) bool { return podGone(&p, ContainerName) != nil }), nil
}

// fillWarm creates warm pods until there are WarmPods.
func (m *SessionManager) fillWarm(ctx context.Context) error {
	pods, err := m.warmPods(ctx)
	if err != nil {
		return err
	}
	cfg := m.cfg.Config
	for range m.cfg.WarmPods - len(pods) {
		pod := cfg.Template.pod(m.ns, cfg.workspace(), m.warmLabels())
		if _, err := m.cs.CoreV1().Pods(m.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// takeWarm gives a warm pod to session id, a running one first, and
// returns it; nil when there is none.
func (m *SessionManager) takeWarm(ctx context.Context, id string) (*corev1.Pod, error) {
	pods, err := m.warmPods(ctx)
	if err != nil {
		return nil, apiErr("list warm pods", err)
	}
	slices.SortStableFunc(pods, func(a, b corev1.Pod) int {
		ra, rb := podRunning(&a, ContainerName), podRunning(&b, ContainerName)
		switch {
		case ra && !rb:
			return -1
		case rb && !ra:
			return 1
		}
		return 0
	})
	for i := range pods {
		p := &pods[i]
		delete(p.Labels, LabelWarm)
		p.Labels[LabelSession] = sessionLabel(id)
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[AnnotationSession] = id
		p.Annotations[AnnotationLastUsed] = time.Now().UTC().Format(time.RFC3339)
		taken, err := m.cs.CoreV1().Pods(m.ns).Update(ctx, p, metav1.UpdateOptions{})
		switch {
		case err == nil:
			m.wake()
			return taken, nil
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			continue // taken by another manager, or gone
		default:
			return nil, apiErr("take warm pod "+p.Name, err)
		}
	}
	m.wake()
	return nil, nil
}

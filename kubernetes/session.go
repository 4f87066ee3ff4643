package kubernetes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"sync"
	"time"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/sessionid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// AnnotationLastUsed is when a session's pod was last used (RFC 3339), so
// that a manager started later reaps pods an earlier process left idle.
const AnnotationLastUsed = "agentbackend.io/last-used"

// lastUsedEvery is how often, at most, a session's use is written to its
// pod: an API write per operation would cost more than the operation.
const lastUsedEvery = time.Minute

// SessionConfig configures a SessionManager.
type SessionConfig struct {
	// Config is what every session's backend starts from: the namespace,
	// the pod template, the workspace directory, ... Config.Pod must be
	// empty.
	Config Config
	// ID names the manager: its pods carry it (LabelManager), and a manager
	// with the same ID in the same namespace (this program restarted, say)
	// finds them again and gives each session its pod back. It must be a
	// valid label value. Empty means a random ID: nothing is found again.
	ID string
	// IdleTimeout is how long a session nobody has asked for keeps its pod
	// before CleanupIdle deletes it. Zero means agentbackend.DefaultIdleTimeout.
	IdleTimeout time.Duration
	// CleanupInterval, if positive, runs CleanupIdle periodically until
	// Close.
	CleanupInterval time.Duration
	// WarmPods is how many pods of the template the manager keeps running
	// and unassigned, so that a new session's first command does not wait
	// for a pod to be scheduled and started; one is refilled as soon as a
	// session takes one. Zero means none. It excludes WorkspaceClaims: a
	// pod's volumes are fixed when it is created.
	WarmPods int
	// WorkspaceClaims gives every session a PersistentVolumeClaim of its
	// own as its workspace: CleanupIdle and Suspend delete the pod and keep
	// the claim, and the session's next pod mounts it again, files intact.
	// DeleteSession deletes both.
	WorkspaceClaims bool
	// ClaimSize is the storage each claim requests ("1Gi" when empty).
	ClaimSize string
	// ClaimStorageClass is the claims' storage class; empty means the
	// cluster's default.
	ClaimStorageClass string
	// ClaimAccessMode is the claims' access mode; empty means ReadWriteOnce.
	ClaimAccessMode corev1.PersistentVolumeAccessMode
}

// SessionManager gives each session (a user, a conversation) its own pod,
// the Kubernetes sibling of agentbackend.SessionManager: GetOrCreate returns
// the session's backend, creating its pod on first use, and concurrent
// calls for one session make one pod. Pods carry the manager's ID and the
// session's, so that a manager with the same ID (the program restarted)
// finds a session's pod by label and attaches to it instead of starting
// over. Sessions unused for the idle timeout lose their pods to CleanupIdle;
// with WorkspaceClaims their files survive on the claim. WarmPods keeps
// ready pods for new sessions.
//
// It is safe for concurrent use.
type SessionManager struct {
	cfg    SessionConfig
	rest   *rest.Config
	cs     kubernetes.Interface
	ns     string
	id     string
	digest string // of the template, for warm pods
	stop   chan struct{}
	bg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	sessions map[string]*session

	refill chan struct{} // wakes the warm pool's refiller
}

// session is one session's backend. Its fields are guarded by the
// manager's mu.
type session struct {
	ready    chan struct{} // closed once b (or err) is set
	b        *Backend
	err      error
	uses     int
	lastUsed time.Time
	written  time.Time // when lastUsed was last written to the pod
}

// NewSessionManager returns a manager; it fails with INVALID_CONFIGURATION
// for a bad configuration and starts filling the warm pool, if any, at
// once. Pods are created on demand.
func NewSessionManager(cfg SessionConfig) (*SessionManager, error) {
	c := cfg.Config
	if c.Pod != "" {
		return nil, configErr("kubernetes.SessionConfig.Config.Pod must be empty: sessions create their pods")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Template.Name != "" || c.Template.WorkspaceClaim != "" {
		return nil, configErr("kubernetes.SessionConfig: the template must not name its pod or claim: every session gets its own")
	}
	if cfg.WarmPods < 0 || cfg.IdleTimeout < 0 {
		return nil, configErr("kubernetes.SessionConfig: WarmPods and IdleTimeout must not be negative")
	}
	if cfg.WarmPods > 0 && cfg.WorkspaceClaims {
		return nil, configErr("kubernetes.SessionConfig: WarmPods and WorkspaceClaims exclude each other: a pod's volumes are fixed when it is created")
	}
	if cfg.ClaimSize != "" {
		if _, err := resource.ParseQuantity(cfg.ClaimSize); err != nil {
			return nil, configErr("kubernetes.SessionConfig.ClaimSize %q: %v", cfg.ClaimSize, err)
		}
	}
	id := cfg.ID
	if id == "" {
		id = "m-" + randomID()
	}
	if errs := validation.IsValidLabelValue(id); len(errs) > 0 || id == "" {
		return nil, configErr("kubernetes.SessionConfig.ID %q is not a valid label value", id)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = ab.DefaultIdleTimeout
	}
	restCfg, ns, err := loadREST(c.REST, c.Namespace)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, configErr("kubernetes: %v", err)
	}
	cfg.Config.REST, cfg.Config.Namespace = restCfg, ns
	m := &SessionManager{
		cfg: cfg, rest: restCfg, cs: cs, ns: ns, id: id,
		digest:   c.Template.digest(c.workspace()),
		stop:     make(chan struct{}),
		sessions: map[string]*session{},
		refill:   make(chan struct{}, 1),
	}
	if cfg.WarmPods > 0 {
		m.bg.Go(m.warmLoop)
		m.wake()
	}
	if cfg.CleanupInterval > 0 {
		m.bg.Go(m.cleanupLoop)
	}
	return m, nil
}

// ID returns the manager's ID, the value of LabelManager on its pods.
func (m *SessionManager) ID() string { return m.id }

var errManagerClosed = &ab.Error{Code: ab.CodeDestroyed, Op: "acquire", Message: "kubernetes: the session manager is closed"}

// GetOrCreate returns the backend of session id: the one this manager
// holds, else the session's pod found by label (a pod an earlier manager
// with the same ID left), else a warm pod, else a new pod. The call counts
// as activity for the idle timeout. Use Acquire to keep a session from
// being reaped while a long task runs. Do not Close the backend: the
// manager does (CleanupIdle, Suspend, DeleteSession, Shutdown).
func (m *SessionManager) GetOrCreate(ctx context.Context, id string) (*Backend, error) {
	b, release, err := m.Acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	release()
	return b, nil
}

// Acquire is GetOrCreate that also marks the session in use until release
// is called (once): CleanupIdle leaves it alone meanwhile.
func (m *SessionManager) Acquire(ctx context.Context, id string) (b *Backend, release func(), err error) {
	if !sessionid.Valid(id) {
		return nil, nil, configErr("invalid session ID %q: use 1 to 128 letters, digits, '.', '_' and '-'", id)
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, nil, errManagerClosed
		}
		s := m.sessions[id]
		if s == nil {
			s = &session{ready: make(chan struct{}), uses: 1}
			m.sessions[id] = s
			m.mu.Unlock()
			b, err := m.open(ctx, id)
			m.mu.Lock()
			s.b, s.err, s.lastUsed = b, err, time.Now()
			close(s.ready)
			if err != nil || m.closed {
				if m.sessions[id] == s {
					delete(m.sessions, id)
				}
				m.mu.Unlock()
				if err == nil {
					b.Detach()
					_ = b.Close()
					err = errManagerClosed
				}
				return nil, nil, err
			}
			m.mu.Unlock()
			m.touch(id, s)
			return b, m.releaser(s), nil
		}
		select {
		case <-s.ready:
		default:
			m.mu.Unlock()
			select {
			case <-s.ready:
				continue
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		if st := s.b.Status(); st == ab.StatusDisconnected || st == ab.StatusDestroyed {
			// Its pod is gone (or someone closed it): start over.
			delete(m.sessions, id)
			m.mu.Unlock()
			_ = s.b.Close()
			continue
		}
		s.uses++
		s.lastUsed = time.Now()
		m.mu.Unlock()
		m.touch(id, s)
		return s.b, m.releaser(s), nil
	}
}

func (m *SessionManager) releaser(s *session) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			s.uses--
			s.lastUsed = time.Now()
			m.mu.Unlock()
		})
	}
}

// touch writes the session's use to its pod, at most every lastUsedEvery.
func (m *SessionManager) touch(id string, s *session) {
	m.mu.Lock()
	due := time.Since(s.written) > lastUsedEvery
	if due {
		s.written = time.Now()
	}
	b := s.b
	m.mu.Unlock()
	if !due || b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.annotate(ctx, b.Pod(), map[string]string{AnnotationLastUsed: time.Now().UTC().Format(time.RFC3339)})
}

// open finds or makes the pod of session id and returns its backend.
func (m *SessionManager) open(ctx context.Context, id string) (*Backend, error) {
	cfg := m.cfg.Config
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}
	t := newTransport(m.rest, m.cs, m.ns, cfg.retryFor())
	pod, err := m.findSession(ctx, id)
	if err == nil && pod == nil && m.cfg.WarmPods > 0 {
		pod, err = m.takeWarm(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	if pod == nil {
		if cfg.Template, err = m.sessionTemplate(ctx, id); err != nil {
			return nil, err
		}
		err = t.create(ctx, cfg.Template.pod(m.ns, cfg.workspace(), m.sessionLabels(id)))
	} else {
		t.adopt(pod)
		err = t.w.waitRunning(ctx)
	}
	if err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return newBackend(ctx, t, cfg)
}

// sessionLabels are the labels of session id's pod.
func (m *SessionManager) sessionLabels(id string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelManager: m.id, LabelSession: sessionLabel(id)}
}

// sessionLabel is session id as a label value: the ID itself when it is
// one, else a digest (AnnotationSession holds the ID).
func sessionLabel(id string) string {
	if len(validation.IsValidLabelValue(id)) == 0 && len(id) <= 40 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:])[:40]
}

// sessionTemplate is the template of session id's pod: the annotation that
// names it and, with WorkspaceClaims, its claim (created if missing).
func (m *SessionManager) sessionTemplate(ctx context.Context, id string) (PodTemplate, error) {
	tpl := m.cfg.Config.Template
	tpl.Annotations = maps.Clone(tpl.Annotations)
	if tpl.Annotations == nil {
		tpl.Annotations = map[string]string{}
	}
	tpl.Annotations[AnnotationSession] = id
	tpl.Annotations[AnnotationLastUsed] = time.Now().UTC().Format(time.RFC3339)
	if m.cfg.WorkspaceClaims {
		claim, err := m.ensureClaim(ctx, id)
		if err != nil {
			return tpl, err
		}
		tpl.WorkspaceClaim = claim
	}
	return tpl, nil
}

// claimName is the name of session id's claim.
func (m *SessionManager) claimName(id string) string {
	sum := sha256.Sum256([]byte(m.id + "\x00" + id))
	return "agentbe-ws-" + hex.EncodeToString(sum[:])[:32]
}

// ensureClaim creates session id's claim unless it exists.
func (m *SessionManager) ensureClaim(ctx context.Context, id string) (string, error) {
	name := m.claimName(id)
	size := m.cfg.ClaimSize
	if size == "" {
		size = "1Gi"
	}
	mode := m.cfg.ClaimAccessMode
	if mode == "" {
		mode = corev1.ReadWriteOnce
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      m.sessionLabels(id),
			Annotations: map[string]string{AnnotationSession: id},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{mode},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	if m.cfg.ClaimStorageClass != "" {
		sc := m.cfg.ClaimStorageClass
		pvc.Spec.StorageClassName = &sc
	}
	_, err := m.cs.CoreV1().PersistentVolumeClaims(m.ns).Create(ctx, pvc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", apiErr("create claim "+name, err)
	}
	return name, nil
}

// findSession returns session id's pod, if one lives.
func (m *SessionManager) findSession(ctx context.Context, id string) (*corev1.Pod, error) {
	var list *corev1.PodList
	err := retryAPI(ctx, m.cfg.Config.retryFor(), func() (err error) {
		list, err = m.cs.CoreV1().Pods(m.ns).List(ctx, metav1.ListOptions{LabelSelector: selector(m.sessionLabels(id))})
		return err
	})
	if err != nil {
		return nil, apiErr("list pods", err)
	}
	for i := range list.Items {
		p := &list.Items[i]
		if p.Annotations[AnnotationSession] == id && podGone(p, ContainerName) == nil {
			return p, nil
		}
	}
	return nil, nil
}

// Suspend deletes session id's pod and forgets its backend; with
// WorkspaceClaims the claim stays, and the next GetOrCreate resumes the
// session on a new pod with its files. A session in use is suspended all
// the same (its operations fail).
func (m *SessionManager) Suspend(ctx context.Context, id string) error {
	return m.drop(ctx, id, false)
}

// DeleteSession deletes session id's pod and, with WorkspaceClaims, its
// claim: the session's files are gone.
func (m *SessionManager) DeleteSession(ctx context.Context, id string) error {
	return m.drop(ctx, id, true)
}

func (m *SessionManager) drop(ctx context.Context, id string, claim bool) error {
	m.mu.Lock()
	s := m.sessions[id]
	delete(m.sessions, id)
	m.mu.Unlock()
	var errs []error
	if s != nil {
		<-s.ready
		if s.b != nil {
			errs = append(errs, s.b.Close())
		}
	}
	// A pod of this session no backend here holds (an earlier process's).
	pods, err := m.cs.CoreV1().Pods(m.ns).List(ctx, metav1.ListOptions{LabelSelector: selector(m.sessionLabels(id))})
	if err != nil {
		errs = append(errs, apiErr("list pods", err))
	} else {
		for _, p := range pods.Items {
			if p.Annotations[AnnotationSession] != id {
				continue
			}
			if err := m.cs.CoreV1().Pods(m.ns).Delete(ctx, p.Name, deleteNow()); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, apiErr("delete pod "+p.Name, err))
			}
		}
	}
	if claim && m.cfg.WorkspaceClaims {
		err := m.cs.CoreV1().PersistentVolumeClaims(m.ns).Delete(ctx, m.claimName(id), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, apiErr("delete claim", err))
		}
	}
	return errors.Join(errs...)
}

// CleanupIdle deletes the pods of sessions nobody has used for the idle
// timeout (keeping their claims) and reports how many it deleted: those of
// this manager's sessions, and those an earlier process with the same ID
// left, judged by AnnotationLastUsed.
func (m *SessionManager) CleanupIdle() int {
	now := time.Now()
	var idle []*Backend
	held := map[string]bool{}
	m.mu.Lock()
	for id, s := range m.sessions {
		if !isReady(s) {
			held[id] = true
			continue
		}
		if s.err == nil && s.uses == 0 && now.Sub(s.lastUsed) > m.cfg.IdleTimeout {
			delete(m.sessions, id)
			idle = append(idle, s.b)
			continue
		}
		held[id] = true
	}
	m.mu.Unlock()
	for _, b := range idle {
		_ = b.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, err := m.cs.CoreV1().Pods(m.ns).List(ctx, metav1.ListOptions{
		LabelSelector: selector(map[string]string{LabelManaged: "true", LabelManager: m.id}) + "," + LabelSession,
	})
	if err != nil {
		return len(idle)
	}
	n := len(idle)
	for _, p := range pods.Items {
		if held[p.Annotations[AnnotationSession]] || p.DeletionTimestamp != nil {
			continue
		}
		used, err := time.Parse(time.RFC3339, p.Annotations[AnnotationLastUsed])
		if err == nil && now.Sub(used) <= m.cfg.IdleTimeout+lastUsedEvery {
			continue
		}
		if err := m.cs.CoreV1().Pods(m.ns).Delete(ctx, p.Name, deleteNow()); err == nil {
			n++
		}
	}
	return n
}

func isReady(s *session) bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

func (m *SessionManager) cleanupLoop() {
	t := time.NewTicker(m.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.CleanupIdle()
		}
	}
}

// Stats counts the sessions this manager holds.
func (m *SessionManager) Stats() ab.PoolStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := ab.PoolStats{Total: len(m.sessions)}
	for _, e := range m.sessions {
		if e.uses > 0 {
			s.Active++
		} else {
			s.Idle++
		}
	}
	return s
}

// Close stops the manager and releases its backends without deleting their
// pods (nor the warm ones): a manager with the same ID, in this process or
// the next, finds them again. A manager without a SessionConfig.ID cannot
// be found again, so its Close deletes them as Shutdown does. Later calls
// fail. Idempotent.
func (m *SessionManager) Close() error {
	return m.shut(context.Background(), m.cfg.ID == "")
}

// Shutdown stops the manager and deletes every pod it has (sessions' and
// warm ones, in use or not, and those of its ID an earlier process left);
// claims stay. Idempotent; after Close it still deletes the pods.
func (m *SessionManager) Shutdown(ctx context.Context) error {
	return m.shut(ctx, true)
}

func (m *SessionManager) shut(ctx context.Context, deletePods bool) error {
	m.mu.Lock()
	first := !m.closed
	m.closed = true
	sessions := m.sessions
	m.sessions = map[string]*session{}
	m.mu.Unlock()
	if first {
		close(m.stop)
		m.bg.Wait()
	}
	var errs []error
	for _, s := range sessions {
		<-s.ready
		if s.b != nil {
			if !deletePods {
				s.b.Detach()
			}
			errs = append(errs, s.b.Close())
		}
	}
	if deletePods {
		_, err := RemoveOrphans(ctx, m.cs, m.ns, map[string]string{LabelManager: m.id})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// annotate merges annotations into a pod's.
func (m *SessionManager) annotate(ctx context.Context, pod string, annotations map[string]string) error {
	p, err := m.cs.CoreV1().Pods(m.ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	maps.Copy(p.Annotations, annotations)
	_, err = m.cs.CoreV1().Pods(m.ns).Update(ctx, p, metav1.UpdateOptions{})
	return err
}

// randomID returns 16 random hex digits.
func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Package kubernetes puts an agentbackend workspace in a Kubernetes pod, for
// agents that outgrow one machine: the cluster schedules and isolates the
// sandboxes. A Backend is an agentbackend.FileBackend and ProcessStarter, so
// scopes, permissions, the tools, the MCP server and background processes
// work on it unchanged.
//
// New creates a pod from a PodTemplate (or attaches to a running one),
// waits for it with a watch, and runs everything through pods/exec: client-go's
// WebSocket executor, with SPDY as the fallback for API servers that do not
// speak it. Files move as on Docker (agentbackend.ContainerBackend): a few
// long-lived shells in the container for small files and every other
// operation, an exec stream of their own for large files, checked for
// length on arrival. Close deletes the pod it created.
//
// The pod is locked down unless the template says otherwise: no service
// account token, no privilege escalation, every capability dropped, the
// RuntimeDefault seccomp profile, a non-root user (65534) with the workspace
// on a volume that user owns, no service environment variables, and a
// restart policy of Never (a container that dies is a lost workspace, not a
// silently emptied one).
//
// A scope of a Backend is checked in the pod: each path is resolved there
// and refused when its links lead out of the scope (see
// agentbackend.ScopedBackend); commands run in the scope's directory.
//
// The backend follows its pod with a watch: while the API server cannot be
// reached its status is reconnecting and execs are retried with backoff;
// when the pod is deleted, evicted or its container ends, the status moves
// to disconnected and every operation, those in flight included, fails with
// CONNECTION_CLOSED.
//
// The RBAC the backend needs in its namespace: pods create, get, list,
// watch and delete, and pods/exec create. With pods/exec get too, execs go
// over WebSocket (else over SPDY). A SessionManager also needs pods update,
// and persistentvolumeclaims create, get and delete for WorkspaceClaims.
//
// This package imports client-go; the agentbackend package does not, so
// programs that do not use Kubernetes do not link it.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	ab "github.com/agentbackend/agentbackend"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Labels and annotations of the pods this package creates.
const (
	// LabelManaged marks a pod as created by this package.
	LabelManaged = "agentbackend.io/managed"
	// LabelSession names (a digest of) the SessionManager session a pod
	// serves; AnnotationSession holds the session ID itself.
	LabelSession = "agentbackend.io/session"
	// LabelManager names the SessionManager a pod belongs to.
	LabelManager = "agentbackend.io/manager"
	// LabelTemplate is a digest of the template a warm pod was made from.
	LabelTemplate = "agentbackend.io/template"
	// LabelWarm marks a pod of a warm pool, not yet given to a session.
	LabelWarm = "agentbackend.io/warm"
	// AnnotationSession is the ID of the session a pod serves.
	AnnotationSession = "agentbackend.io/session"
)

// DefaultWorkspace is the workspace directory inside the pod when
// Config.WorkspaceDir is empty.
const DefaultWorkspace = "/workspace"

// DefaultStartTimeout bounds how long New waits for a pod to run when its
// context has no deadline.
const DefaultStartTimeout = 5 * time.Minute

// Config configures a Backend. Exactly one of Template.Image and Pod says
// where the workspace lives.
type Config struct {
	// REST is the connection to the API server. Nil loads it the way
	// kubectl does: $KUBECONFIG or ~/.kube/config, else the in-cluster
	// service account.
	REST *rest.Config `json:"-"`
	// Namespace is where the pod is (or is created). Empty means the
	// kubeconfig context's namespace, else "default".
	Namespace string `json:"namespace,omitempty"`
	// Template describes the pod to create.
	Template PodTemplate `json:"template,omitzero"`
	// Pod attaches to a running pod (by name) instead of creating one.
	// Close leaves such a pod running; Template does not apply.
	Pod string `json:"pod,omitempty"`
	// Container names the container of an attached pod to work in. Empty
	// means its first container.
	Container string `json:"container,omitempty"`
	// WorkspaceDir is the workspace root inside the pod, where a created
	// pod mounts its workspace volume. Default: DefaultWorkspace.
	WorkspaceDir string `json:"workspaceDir,omitempty"`
	// Env is given to every command, under ExecOptions.Env and the scope's.
	// (Template.Env is the container's environment: it reaches commands
	// too, under this.)
	Env map[string]string `json:"env,omitempty"`
	// MaxOutputLength caps the bytes kept of each of a command's stdout and
	// stderr. Zero means 10 MiB; negative means no limit.
	MaxOutputLength int `json:"maxOutputLength,omitempty"`
	// AllowDangerous turns off dangerous-command blocking (see
	// agentbackend.CheckCommand). The pod is what contains a command.
	AllowDangerous bool `json:"allowDangerous,omitempty"`
	// Safety is the policy commands are checked against; nil means
	// agentbackend.DefaultSafety.
	Safety *ab.SafetyPolicy `json:"-"`
	// Background bounds what the backend keeps of its background processes.
	Background ab.ProcessConfig `json:"-"`
	// RetryFor bounds how long a request that cannot reach the API server
	// (restarting, say), an exec or a pod's creation, is retried with
	// backoff, within its context. Zero means one minute.
	RetryFor time.Duration `json:"-"`
}

// Backend is a workspace in a Kubernetes pod. Its methods are those of
// agentbackend.ContainerBackend; Pod and Namespace say where it is.
type Backend struct {
	*ab.ContainerBackend
	t *transport
}

// Scope returns a view of the subdirectory path of the workspace; see
// agentbackend.ScopedBackend. (Its Unwrap returns this Backend.)
func (b *Backend) Scope(path string, cfg *ab.ScopeConfig) (*ab.ScopedBackend, error) {
	return ab.NewScope(b, path, cfg)
}

// Pod returns the name of the backend's pod.
func (b *Backend) Pod() string { return b.t.pod }

// Namespace returns the namespace of the backend's pod.
func (b *Backend) Namespace() string { return b.t.ns }

// Container returns the name of the container the backend works in.
func (b *Backend) Container() string { return b.t.container }

// Detach makes Close leave the pod running (Close deletes a pod New
// created, by default). A SessionManager uses it to keep a session's pod
// for the next process that looks for it.
func (b *Backend) Detach() { b.t.keep.Store(true) }

// New creates a pod from cfg.Template (or attaches to the running pod
// cfg.Pod), waits until it runs, makes the workspace directory and returns
// the backend, connected. A pod it created is deleted again when anything
// fails. It fails with INVALID_CONFIGURATION for a bad configuration,
// EXEC_ERROR when the pod cannot be created or does not come up within ctx
// (or DefaultStartTimeout), with the reason the cluster gives.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	restCfg, ns, err := loadREST(cfg.REST, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, configErr("kubernetes: %v", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}
	t := newTransport(restCfg, cs, ns, cfg.retryFor())
	if cfg.Pod != "" {
		err = t.attach(ctx, cfg.Pod, cfg.Container)
	} else {
		err = t.create(ctx, cfg.Template.pod(ns, cfg.workspace(), nil))
	}
	if err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return newBackend(ctx, t, cfg)
}

// newBackend makes the backend of a pod that runs.
func newBackend(ctx context.Context, t *transport, cfg Config) (*Backend, error) {
	cb, err := ab.NewContainer(ctx, t, ab.ContainerConfig{
		Type:            ab.TypeKubernetes,
		WorkspaceDir:    cfg.workspace(),
		Env:             maps.Clone(cfg.Env),
		MaxOutputLength: cfg.MaxOutputLength,
		AllowDangerous:  cfg.AllowDangerous,
		Safety:          cfg.Safety,
		Background:      cfg.Background,
		HoldStreams:     true, // containerd's CRI (see there)
	})
	if err != nil {
		return nil, err
	}
	return &Backend{ContainerBackend: cb, t: t}, nil
}

// retryFor is how long a request the API server could not take is
// retried (Config.RetryFor).
func (cfg *Config) retryFor() time.Duration {
	if cfg.RetryFor == 0 {
		return time.Minute
	}
	return cfg.RetryFor
}

func (cfg *Config) workspace() string {
	if cfg.WorkspaceDir == "" {
		return DefaultWorkspace
	}
	return cfg.WorkspaceDir
}

func (cfg *Config) validate() error {
	if (cfg.Template.Image == "") == (cfg.Pod == "") {
		return configErr("kubernetes.Config: set exactly one of Template.Image and Pod")
	}
	if cfg.RetryFor < 0 {
		return configErr("kubernetes.Config: RetryFor must not be negative")
	}
	if cfg.Pod == "" {
		if err := cfg.Template.validate(); err != nil {
			return err
		}
	}
	return ab.ValidateEnv(cfg.Env)
}

// loadREST returns the client configuration and namespace to use.
func loadREST(given *rest.Config, ns string) (*rest.Config, string, error) {
	var cfg *rest.Config
	if given != nil {
		cfg = rest.CopyConfig(given)
		if ns == "" {
			ns = corev1.NamespaceDefault
		}
	} else {
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{})
		c, err := loader.ClientConfig()
		if err != nil {
			return nil, "", configErr("kubernetes: no cluster configuration (KUBECONFIG, ~/.kube/config or in-cluster): %v", err)
		}
		cfg = c
		if ns == "" {
			if ns, _, err = loader.Namespace(); err != nil || ns == "" {
				ns = corev1.NamespaceDefault
			}
		}
	}
	// Every exec builds its own connection: read the certificate files
	// once, not per exec.
	if err := rest.LoadTLSFiles(cfg); err != nil {
		return nil, "", configErr("kubernetes: %v", err)
	}
	return cfg, ns, nil
}

// RemoveOrphans deletes the pods in namespace ns that carry LabelManaged
// and every label in labels, and returns their names. Run it at startup to
// clean up after a process that died without closing its backends. With no
// labels it deletes every pod this package created in the namespace; pass
// {LabelManager: id} to limit it to one SessionManager's.
func RemoveOrphans(ctx context.Context, cs kubernetes.Interface, ns string, labels map[string]string) ([]string, error) {
	sel := map[string]string{LabelManaged: "true"}
	maps.Copy(sel, labels)
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector(sel)})
	if err != nil {
		return nil, apiErr("list pods", err)
	}
	var removed []string
	var errs []error
	for _, p := range list.Items {
		err := cs.CoreV1().Pods(ns).Delete(ctx, p.Name, deleteNow())
		switch {
		case err == nil:
			removed = append(removed, p.Name)
		case !apierrors.IsNotFound(err):
			errs = append(errs, apiErr("delete pod "+p.Name, err))
		}
	}
	return removed, errors.Join(errs...)
}

// deleteNow are the options every delete of this package uses: a grace
// period of one second (the pod's shell leaves at SIGTERM at once) and the
// pod's dependents deleted in the background.
func deleteNow() metav1.DeleteOptions {
	grace := int64(1)
	bg := metav1.DeletePropagationBackground
	return metav1.DeleteOptions{GracePeriodSeconds: &grace, PropagationPolicy: &bg}
}

func configErr(format string, args ...any) *ab.Error {
	return &ab.Error{Code: ab.CodeInvalidConfiguration, Op: "config", Message: fmt.Sprintf(format, args...)}
}

// apiErr reports a failed API request.
func apiErr(what string, err error) *ab.Error {
	return &ab.Error{Code: ab.CodeExecError, Op: "kubernetes", Err: err, Message: "kubernetes: " + what + ": " + err.Error()}
}

package kubernetes_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/backendtest"
	"github.com/agentbackend/agentbackend/kubernetes"
)

// closingScope is a scope that also closes its parent, so that the
// conformance suite's Close checks see a backend's whole lifecycle through
// a scope.
type closingScope struct {
	*ab.ScopedBackend
	parent ab.FileBackend
}

func (s closingScope) Close() error {
	err := s.ScopedBackend.Close()
	if perr := s.parent.Close(); err == nil {
		err = perr
	}
	return err
}

// TestConformance runs the suite on backends attached to one shared pod,
// each with a workspace directory of its own (a pod per subtest would
// spend the run scheduling pods); TestConformanceOwnPods runs the parts
// where a backend's own pod matters on pods of their own.
func TestConformance(t *testing.T) {
	attach := attachShared(t, "/workspace/conformance")
	backendtest.RunWith(t, func(t *testing.T) ab.FileBackend {
		return attach(t)
	}, backendtest.Options{ConcurrentProcesses: 8})
}

// TestScopeConformance runs the suite on scopes of backends attached to one
// shared pod.
func TestScopeConformance(t *testing.T) {
	attach := attachShared(t, "/workspace/scopes")
	backendtest.RunWith(t, func(t *testing.T) ab.FileBackend {
		b := attach(t)
		sc, err := b.Scope("tenant/a", &ab.ScopeConfig{Env: map[string]string{"SCOPE_LEVEL": "conformance"}})
		require.NoError(t, err)
		return closingScope{sc, b}
	}, backendtest.Options{ConcurrentProcesses: 8})
}

// attachShared starts one pod for the test and returns a factory of
// backends attached to it, each with a workspace directory of its own
// beneath dir.
func attachShared(t *testing.T, dir string) func(*testing.T) *kubernetes.Backend {
	shared := newBackend(t, nil)
	var n atomic.Int32
	return func(t *testing.T) *kubernetes.Backend {
		cfg := testConfig(t)
		cfg.Template = kubernetes.PodTemplate{}
		cfg.Pod = shared.Pod()
		cfg.WorkspaceDir = fmt.Sprintf("%s/%d", dir, n.Add(1))
		b, err := kubernetes.New(testCtx(t), cfg)
		require.NoError(t, err)
		return b
	}
}

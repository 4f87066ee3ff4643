package agentbackend_test

import (
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/backendtest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// Every backend of this package, and a scope of each, passes the
// conformance suite.

func newLocal(t *testing.T, cfg ab.LocalConfig) *ab.LocalBackend {
	t.Helper()
	if cfg.RootDir == "" {
		cfg.RootDir = t.TempDir()
	}
	b, err := ab.NewLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newMemory(t *testing.T) *ab.MemoryBackend {
	t.Helper()
	b, err := ab.NewMemory(ab.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scopeOf returns a scope of b that closes b when it is closed... by the
// test: the suite closes the scope, the cleanup closes the parent.
func scopeOf(t *testing.T, b ab.FileBackend, path string) ab.FileBackend {
	t.Helper()
	t.Cleanup(func() { b.Close() })
	s, err := b.Scope(path, &ab.ScopeConfig{Env: map[string]string{"SCOPED": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	return closeParentToo{s, b}
}

// closeParentToo is a scope whose Close also closes its parent, so the
// suite's close checks see a backend that really shuts down.
type closeParentToo struct {
	*ab.ScopedBackend
	parent ab.FileBackend
}

func (c closeParentToo) Close() error {
	c.ScopedBackend.Close()
	return c.parent.Close()
}

func TestConformanceLocal(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		return newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone})
	})
}

func TestConformanceLocalSoftware(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		return newLocal(t, ab.LocalConfig{Isolation: ab.IsolationSoftware})
	})
}

func TestConformanceLocalBwrap(t *testing.T) {
	testenv.NeedBwrap(t)
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		return newLocal(t, ab.LocalConfig{Isolation: ab.IsolationBwrap})
	})
}

func TestConformanceLocalScope(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		return scopeOf(t, newLocal(t, ab.LocalConfig{}), "tenants/one")
	})
}

func TestConformanceMemory(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) ab.FileBackend { return newMemory(t) })
}

func TestConformanceMemoryScope(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		return scopeOf(t, newMemory(t), "tenants/one")
	})
}

func TestConformanceComposite(t *testing.T) {
	backendtest.RunWith(t, func(t *testing.T) ab.FileBackend {
		c, err := ab.NewComposite(newLocal(t, ab.LocalConfig{}), map[string]ab.FileBackend{"/mnt/mem/": newMemory(t)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}, backendtest.Options{RootEntries: []string{"mnt"}})
}

func TestConformanceCompositeScope(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		c, err := ab.NewComposite(newMemory(t), map[string]ab.FileBackend{"/ws/": newLocal(t, ab.LocalConfig{})})
		if err != nil {
			t.Fatal(err)
		}
		return scopeOf(t, c, "ws")
	})
}

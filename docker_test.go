package agentbackend_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/backendtest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// dockerTestImage is built FROM scratch with the static busybox of Debian's
// busybox-static package (testdata/docker/Dockerfile), so the tests need
// no registry.
const dockerTestImage = "agentbackend-test:busybox"

var (
	dockerOnce  sync.Once
	dockerCli   *client.Client
	dockerWhy   string
	dockerReady bool
)

// needDocker skips (or, when AGENTBE_REQUIRE names docker, fails) t unless
// a Docker engine answers and the test image exists or can be built, and
// returns a client shared by the tests.
func needDocker(t testing.TB) *client.Client {
	t.Helper()
	dockerOnce.Do(func() {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			dockerWhy = "docker client: " + err.Error()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := cli.Ping(ctx); err != nil {
			dockerWhy = "no Docker engine answers (set DOCKER_HOST; .ci/start-docker starts one): " + err.Error()
			cli.Close()
			return
		}
		if err := ensureDockerTestImage(ctx, cli); err != nil {
			dockerWhy = err.Error()
			cli.Close()
			return
		}
		dockerCli, dockerReady = cli, true
	})
	testenv.Need(t, "docker", dockerReady, dockerWhy)
	return dockerCli
}

// ensureDockerTestImage builds agentbackend-test:busybox through the Engine
// API unless it exists: the context is testdata/docker/Dockerfile plus
// /bin/busybox.
func ensureDockerTestImage(ctx context.Context, cli *client.Client) error {
	if _, err := cli.ImageInspect(ctx, dockerTestImage); err == nil {
		return nil
	}
	dockerfile, err := os.ReadFile(filepath.Join("testdata", "docker", "Dockerfile"))
	if err != nil {
		return err
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("the test image needs a static busybox at /bin/busybox (apt-get install busybox-static): %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, dockerfile}, {"busybox", 0o755, busybox}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Now()}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{dockerTestImage}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("build %s: %v", dockerTestImage, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if bytes.Contains(out, []byte(`"error"`)) {
		return fmt.Errorf("build %s: %s", dockerTestImage, out)
	}
	if _, err := cli.ImageInspect(ctx, dockerTestImage); err != nil {
		return fmt.Errorf("build %s: %v: %s", dockerTestImage, err, out)
	}
	return nil
}

func dockerCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newDockerBackend creates a backend on a fresh container of the test
// image, closed when t ends.
func newDockerBackend(t testing.TB, cfg ab.DockerConfig) *ab.DockerBackend {
	t.Helper()
	cli := needDocker(t)
	if cfg.Image == "" && cfg.Runtime == nil && cfg.ContainerID == "" {
		cfg.Image = dockerTestImage
	}
	if cfg.Client == nil {
		cfg.Client = cli
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{"io.agentbackend.test": "1"}
	}
	b, err := ab.NewDocker(dockerCtx(t), cfg)
	if err != nil {
		t.Fatalf("NewDocker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// dockerRaw runs argv in container id straight through the Engine API,
// bypassing the backend, to see the container as it is.
func dockerRaw(t testing.TB, id string, argv ...string) (string, int) {
	t.Helper()
	cli := needDocker(t)
	ctx := dockerCtx(t)
	created, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec create: %v", err)
	}
	hr, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach: %v", err)
	}
	defer hr.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, hr.Reader); err != nil {
		t.Fatalf("exec output: %v", err)
	}
	info, err := cli.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		t.Fatalf("exec inspect: %v", err)
	}
	return out.String(), info.ExitCode
}

// dockerClosingScope is a scope that also closes its parent, so that the
// conformance suite's Close checks (tracked closers, status changes) see a
// backend's whole lifecycle through a scope.
type dockerClosingScope struct {
	*ab.ScopedBackend
	parent ab.FileBackend
}

func (s dockerClosingScope) Close() error {
	err := s.ScopedBackend.Close()
	if perr := s.parent.Close(); err == nil {
		err = perr
	}
	return err
}

func TestDockerConformance(t *testing.T) {
	needDocker(t)
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		return newDockerBackend(t, ab.DockerConfig{})
	})
}

// TestDockerScopeConformance runs the suite on scopes of backends attached
// to one shared container, each backend with its own workspace directory.
func TestDockerScopeConformance(t *testing.T) {
	needDocker(t)
	t.Parallel()
	shared := newDockerBackend(t, ab.DockerConfig{})
	var n atomic.Int32
	backendtest.RunWith(t, func(t *testing.T) ab.FileBackend {
		b, err := ab.NewDocker(dockerCtx(t), ab.DockerConfig{
			ContainerID:  shared.ContainerID(),
			WorkspaceDir: fmt.Sprintf("/ws/%d", n.Add(1)),
			Client:       needDocker(t),
		})
		if err != nil {
			t.Fatalf("NewDocker (attach): %v", err)
		}
		sc, err := b.Scope("tenant/a", &ab.ScopeConfig{Env: map[string]string{"SCOPE_LEVEL": "conformance"}})
		if err != nil {
			t.Fatalf("Scope: %v", err)
		}
		return dockerClosingScope{sc, b}
	}, backendtest.Options{ConcurrentProcesses: 8}) // TestDockerConformance runs 50
}

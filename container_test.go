package agentbackend_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/backendtest"
)

// execTransport is a ContainerTransport over the Docker Engine API's exec,
// written the way a user would write one for another runtime: the
// ContainerBackend's conformance is checked on it.
type execTransport struct {
	cli *client.Client
	id  string
}

func (t execTransport) Start(ctx context.Context, cmd *ab.ContainerCommand) (ab.ContainerProcess, error) {
	created, err := t.cli.ContainerExecCreate(ctx, t.id, container.ExecOptions{
		AttachStdin: cmd.Stdin != nil, AttachStdout: true, AttachStderr: true, Cmd: cmd.Argv,
	})
	if err != nil {
		return nil, err
	}
	hr, err := t.cli.ContainerExecAttach(context.WithoutCancel(ctx), created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, err
	}
	p := &execProcess{t: t, execID: created.ID, hr: hr, done: make(chan struct{})}
	if cmd.Stdin != nil {
		go func() {
			_, _ = io.Copy(hr.Conn, cmd.Stdin)
			_ = hr.CloseWrite()
		}()
	}
	go func() {
		defer close(p.done)
		_, p.err = stdcopy.StdCopy(cmd.Stdout, cmd.Stderr, hr.Reader)
	}()
	return p, nil
}

func (t execTransport) Close() error { return nil }

type execProcess struct {
	t      execTransport
	execID string
	hr     types.HijackedResponse
	done   chan struct{}
	err    error
	once   sync.Once
}

func (p *execProcess) Wait() (int, error) {
	<-p.done
	if p.err != nil {
		return -1, p.err
	}
	for delay := time.Millisecond; ; delay = min(2*delay, time.Second) {
		info, err := p.t.cli.ContainerExecInspect(context.Background(), p.execID)
		if err != nil {
			return -1, err
		}
		if !info.Running {
			return info.ExitCode, nil
		}
		time.Sleep(delay)
	}
}

func (p *execProcess) Close() error {
	p.once.Do(p.hr.Close)
	return nil
}

// TestContainerConformance runs the suite on ContainerBackends over
// execTransport, each in its own workspace of one shared container.
func TestContainerConformance(t *testing.T) {
	cli := needDocker(t)
	shared := newDockerBackend(t, ab.DockerConfig{})
	var n atomic.Int32
	backendtest.RunWith(t, func(t *testing.T) ab.FileBackend {
		b, err := ab.NewContainer(dockerCtx(t), execTransport{cli, shared.ContainerID()}, ab.ContainerConfig{
			Type: "test-container", WorkspaceDir: fmt.Sprintf("/ws/%d", n.Add(1)),
		})
		require.NoError(t, err)
		return b
	}, backendtest.Options{ConcurrentProcesses: 8})
}

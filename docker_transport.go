package agentbackend

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// dockerTransport is the ContainerTransport of a DockerBackend: processes
// are Engine API execs (create, attach, inspect for the exit code), so
// DOCKER_HOST may name a local or a remote engine.
type dockerTransport struct {
	cli       dockerAPI
	ownClient bool           // Close closes cli
	id        string         // container ID
	created   bool           // Close removes the container
	user      string         // every exec runs as this user; empty: the image's
	network   *dockerNetwork // an allow-list Network's proxy; nil for any other network
	netMode   string         // the container's network mode as the engine has it ("none", "bridge", "host", ...)
}

var _ ContainerTransport = (*dockerTransport)(nil)

// Start creates and attaches an exec of cmd.Argv. ctx bounds both; the
// attached connection then lives until the command's output ends or Close.
func (t *dockerTransport) Start(ctx context.Context, cmd *ContainerCommand) (ContainerProcess, error) {
	created, err := t.cli.ContainerExecCreate(ctx, t.id, container.ExecOptions{
		User:         t.user,
		AttachStdin:  cmd.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          cmd.Argv,
	})
	if err != nil {
		return nil, err
	}
	hr, err := t.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, err
	}
	p := &dockerExec{cli: t.cli, id: created.ID, hr: hr, streamed: make(chan error, 1)}
	if cmd.Stdin != nil {
		go func() { // ends at the end of Stdin, or at its first write after the connection closed
			_, _ = io.Copy(hr.Conn, cmd.Stdin)
			_ = hr.CloseWrite()
		}()
	}
	go func() {
		_, err := stdcopy.StdCopy(cmd.Stdout, cmd.Stderr, hr.Reader)
		p.streamed <- err
	}()
	return p, nil
}

// Close removes the container the backend created (killing whatever still
// runs there) and closes the client the backend made.
func (t *dockerTransport) Close() error {
	var errs []error
	t.network.close()
	if t.created {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := t.cli.ContainerRemove(ctx, t.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, dockerErr("remove container", err))
		}
	}
	if t.ownClient {
		errs = append(errs, t.cli.Close())
	}
	return errors.Join(errs...)
}

// dockerExec is one attached exec.
type dockerExec struct {
	cli      dockerAPI
	id       string
	hr       types.HijackedResponse
	streamed chan error
	once     sync.Once
}

// Wait waits for the output to end, then for the engine to report the
// exit code: at once in the usual case, polled (up to every second) when
// the output ended before the command did.
func (p *dockerExec) Wait() (int, error) {
	if err := <-p.streamed; err != nil {
		return -1, err
	}
	delay := 10 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		info, err := p.cli.ContainerExecInspect(ctx, p.id)
		cancel()
		if err != nil {
			return -1, err
		}
		if !info.Running {
			return info.ExitCode, nil
		}
		time.Sleep(delay)
		delay = min(2*delay, time.Second)
	}
}

// Close drops the attached connection.
func (p *dockerExec) Close() error {
	p.once.Do(p.hr.Close)
	return nil
}

//go:build linux

package agentbackend

import (
	"context"
	"os"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbackend/agentbackend/internal/netproxy"
)

// inspectOnly is an engine that reports a process id for any container.
type inspectOnly struct {
	client.APIClient
	pid int
}

func (f inspectOnly) ContainerInspect(context.Context, string) (container.InspectResponse, error) {
	return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{State: &container.State{Running: true, Pid: f.pid}}}, nil
}

// An engine on another host reports process ids that name processes of
// this one: the proxy must not be bound in their namespaces.
func TestDockerNetworkRefusesAForeignProcess(t *testing.T) {
	if err := netproxy.CanListenIn(); err != nil {
		t.Skip(err)
	}
	for _, pid := range []int{os.Getpid(), 1} {
		n := &dockerNetwork{mark: "AGENTBE_CONTAINER_MARK=0123", log: nil}
		err := n.attach(context.Background(), inspectOnly{pid: pid}, "c")
		require.Error(t, err)
		assert.Equal(t, CodeMissingUtilities, ErrorCode(err))
		assert.Contains(t, err.Error(), "needs the engine on this host")
		assert.Nil(t, n.closer, "nothing bound for pid %d", pid)
	}
}

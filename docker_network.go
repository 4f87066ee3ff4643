package agentbackend

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/agentbackend/agentbackend/internal/netproxy"
)

// dockerNetwork is the filtering proxy of a container whose
// DockerConfig.Network is an allow-list: the container is created without
// a network (NetworkMode none) and the proxy is bound inside its network
// namespace, entered from this host, for the container's life.
type dockerNetwork struct {
	rules  netproxy.Rules
	mark   string // a variable only this container's processes have, to recognise its init among the host's processes
	log    *slog.Logger
	closer io.Closer
}

// newDockerNetwork checks an allow-list DockerConfig.Network and returns
// its proxy, not yet attached; nil for any other network.
func newDockerNetwork(cfg *DockerConfig) (*dockerNetwork, error) {
	n := Network(cfg.Network)
	if n.AllowList() == nil {
		return nil, nil
	}
	rules, err := n.rules("DockerConfig.Network")
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.ContainerID != "":
		return nil, errConfig("DockerConfig.Network %q applies to a container the backend creates, not to ContainerID", cfg.Network)
	case cfg.OCIRuntime == "runsc":
		return nil, errConfig("DockerConfig.Network %q needs a runtime whose containers use the kernel's network namespaces: under gVisor (runsc) the proxy cannot be reached", cfg.Network)
	}
	if err := netproxy.CanListenIn(); err != nil {
		return nil, &Error{Code: CodeMissingUtilities, Op: "config", Err: err,
			Message: "DockerConfig.Network " + cfg.Network + ": the proxy of an allow-list cannot be bound inside the container: " + err.Error()}
	}
	var token [16]byte
	_, _ = rand.Read(token[:])
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &dockerNetwork{rules: rules, mark: "AGENTBE_CONTAINER_MARK=" + hex.EncodeToString(token[:]), log: log}, nil
}

// env is what the container's environment gets: the proxy's variables
// and the mark.
func (n *dockerNetwork) env() []string {
	return append(netproxy.Env(netproxy.SandboxAddr), n.mark)
}

// proxyEnv is what every command's environment gets over the configured
// and the call's variables (as LocalBackend does): the proxy's variables;
// nil for any other network.
func (n *dockerNetwork) proxyEnv() map[string]string {
	if n == nil {
		return nil
	}
	env := map[string]string{}
	for _, kv := range netproxy.Env(netproxy.SandboxAddr) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// attach binds the proxy in the network namespace of the started
// container id, found through the process id the engine reports. That
// process must carry the mark: an engine on another host (or a process id
// reused meanwhile) names some process of this one, whose namespace the
// proxy must not enter.
func (n *dockerNetwork) attach(ctx context.Context, cli dockerAPI, id string) error {
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		return dockerErr("inspect container "+id, err)
	}
	if info.State == nil || info.State.Pid <= 0 {
		return dockerErr("attach the network proxy", errors.New("the engine reports no process for the container"))
	}
	proc := "/proc/" + strconv.Itoa(info.State.Pid)
	ns, err := os.Open(proc + "/ns/net")
	if err == nil {
		defer ns.Close()
		var environ []byte
		if environ, err = os.ReadFile(proc + "/environ"); err == nil && !bytes.Contains(append([]byte{0}, environ...), []byte("\x00"+n.mark+"\x00")) {
			err = errors.New("the container's process is not on this host")
		}
	}
	if err != nil {
		return &Error{Code: CodeMissingUtilities, Op: "connect", Err: err,
			Message: fmt.Sprintf("docker: an allow-list Network needs the engine on this host, its containers' processes visible here: %v", err)}
	}
	srv := &netproxy.Server{Rules: n.rules, Log: func(e netproxy.Event) { netproxy.LogEvent(n.log, "", e) }}
	if n.closer, err = srv.ServeIn(ns, netproxy.SandboxPort); err != nil {
		return dockerErr("attach the network proxy", err)
	}
	return nil
}

// close stops the proxy, if it was attached.
func (n *dockerNetwork) close() {
	if n != nil && n.closer != nil {
		n.closer.Close()
	}
}

// scopeNetworkGap: every command of a container shares its network
// namespace, so a scope's rules apply only where that namespace reaches
// nothing.
func (t *dockerTransport) scopeNetworkGap() string {
	switch {
	case t.network != nil:
		return "every command of the container shares its allow-list's proxy, which cannot tell a scope's commands from the others"
	case t.netMode != "none":
		return "the container's network (" + cmp.Or(t.netMode, "the engine's default") + ") is shared by every command of the container"
	}
	return ""
}

package agentbackend

import (
	"io"
	"os"

	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// Network returns what the backend's commands reach: LocalConfig.Network
// (NetworkNone when it was empty) under bubblewrap isolation, and
// NetworkHost under software or no isolation, where commands run on the
// host.
func (b *LocalBackend) Network() Network {
	switch {
	case b.bwrap == nil:
		return NetworkHost
	case b.network == "":
		return NetworkNone
	}
	return b.network
}

// proxied sets up the network of a command under an allow-list: the
// proxy's variables in its environment, and an Attacher that serves a
// filtering proxy of its own inside its sandbox, with the backend's
// allow-list, the scope's gate (nil outside a scope) and logs.
func (b *LocalBackend) proxied(spec *sandbox.Spec, command string, gate *netGate) {
	spec.Env = append(spec.Env, netproxy.Env(netproxy.SandboxAddr)...)
	srv := &netproxy.Server{Rules: b.netRules, Log: func(e netproxy.Event) {
		if gate == nil || !gate.log(e) {
			netproxy.LogEvent(b.log, command, e)
		}
	}}
	if gate != nil {
		srv.Check = gate.check
	}
	spec.Attach = func(ns *os.File) (io.Closer, error) { return srv.ServeIn(ns, netproxy.SandboxPort) }
}

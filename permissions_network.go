package agentbackend

import (
	"context"
	"errors"
	"time"

	"github.com/agentbackend/agentbackend/internal/netproxy"
)

// The network decisions of a scope: a command run through the scope gets a
// netGate (ExecOptions.network), which the backend's filtering proxy asks
// about each connection the allow-list lets through, and which logs every
// decision with the scope's logger.

// netGate is a scope's part in the network decisions of one command.
type netGate struct {
	s       *ScopedBackend
	command string
}

// netExec gives a command run through the scope its gate, when the scope
// has network rules or a logger. Network rules that could not apply were
// refused when the scope was made (checkNetworkRules).
func (s *ScopedBackend) netExec(eo *ExecOptions, command string) {
	if (s.perms == nil || !s.perms.strict[AccessNetwork.index()]) && s.logger == nil {
		return
	}
	eo.network = &netGate{s: s, command: command}
}

// networkGapper is a backend that knows whether the network rules of a
// scope apply to the commands it runs.
type networkGapper interface {
	// scopeNetworkGap returns why a scope's network rules cannot apply to
	// the backend's commands, or "" when they do: the commands reach no
	// network at all, or only through a proxy that asks the scope.
	scopeNetworkGap() string
}

// networkGap is scopeNetworkGap for any backend: one that does not say
// cannot apply them.
func networkGap(b FileBackend) string {
	if g, ok := b.(networkGapper); ok {
		return g.scopeNetworkGap()
	}
	return "a " + string(b.Type()) + " backend cannot filter its commands' connections"
}

// checkNetworkRules refuses network rules that narrow what the scope's
// commands reach where nothing could apply them (the host's network, a
// container's, a remote daemon's): silently letting every connection
// through would betray a policy that looks enforced. A scope that runs no
// command, or whose commands reach no network, keeps them trivially.
func (s *ScopedBackend) checkNetworkRules() error {
	c := s.perms
	if c == nil || !c.strict[AccessNetwork.index()] || c.deniesAll(AccessExec) {
		return nil
	}
	why := networkGap(s.fs)
	if why == "" {
		return nil
	}
	return errConfig("Permissions.Network: the scope's network rules cannot apply to its commands, because %s; "+
		"give the backend no network or an allow-list Network (a filtering proxy, which asks the scope), "+
		"or allow every host in Permissions.Network to accept the backend's network as it is", why)
}

// scopeNetworkGap: a command of a bwrap sandbox reaches nothing under
// NetworkNone and only the proxy, which asks the scope, under an
// allow-list.
func (b *LocalBackend) scopeNetworkGap() string {
	switch {
	case b.bwrap == nil:
		return "commands run on the host under " + string(b.isolation) + " isolation, with the host's network"
	case b.Network() == NetworkHost:
		return "the backend's Network is host"
	}
	return ""
}

// scopeNetworkGap: nothing runs in memory.
func (b *MemoryBackend) scopeNetworkGap() string { return "" }

// scopeNetworkGap: a command goes to any of the composite's backends.
func (c *CompositeBackend) scopeNetworkGap() string {
	for _, b := range append(c.backends(), c.def) {
		if why := networkGap(b); why != "" {
			return why
		}
	}
	return ""
}

// scopeNetworkGap: every command of a container shares its network; the
// transport says whether that reaches anything.
func (b *ContainerBackend) scopeNetworkGap() string {
	if g, ok := b.t.(networkGapper); ok {
		return g.scopeNetworkGap()
	}
	return "every command of the " + string(b.Type()) + " container shares its network, which no scope can filter"
}

// scopeNetworkGap: the daemon's proxy (if it has one) decides by its own
// rules, and cannot ask this side.
func (b *RemoteBackend) scopeNetworkGap() string {
	return "a remote daemon runs them with the network of its own --network, whose proxy does not ask this side's scopes"
}

// check decides a connection the allow-list lets through; its note is the
// permission decision, for the log.
func (g *netGate) check(ctx context.Context, t netproxy.Target) (any, error) {
	var o opCheck
	err := g.s.checkNetwork(ctx, g.command, t, &o)
	if err != nil {
		reason := err.Error()
		var d *Denial
		if errors.As(err, &d) {
			reason = d.Error()
		}
		return o.rec, &netproxy.Blocked{Target: t, Reason: reason, Err: err}
	}
	return o.rec, nil
}

// log records a decision of the proxy with the scope's logger, if it has
// one, and reports whether it did.
func (g *netGate) log(e netproxy.Event) bool {
	s := g.s
	if s.logger == nil {
		return false
	}
	rec, _ := e.Note.(PermissionRecord)
	s.logger.Log(OperationEntry{
		Time: time.Now(), Operation: OpNetwork, Success: e.Err == nil, Err: e.Err,
		Host: e.Target.String(), Command: g.command, User: s.user, Workspace: s.root, Permission: rec,
	})
	return true
}

// checkNetwork checks a connection of command to t against the network
// policies of the scope's permissions, asking approvers when a rule says
// so. It fails with PERMISSION_DENIED (or APPROVAL_REQUIRED), the host and
// port as the error's Path.
func (s *ScopedBackend) checkNetwork(ctx context.Context, command string, t netproxy.Target, o *opCheck) error {
	c := s.perms
	ni := AccessNetwork.index()
	if c == nil || !c.strict[ni] {
		return nil
	}
	host := t.String()
	best := verdict{act: Allow}
	for _, l := range c.layers {
		pol := &l.perms.pol[ni]
		if pol.trivial {
			continue
		}
		act, rule := pol.decideHost(t.Host, t.Port)
		if v := (verdict{act: act, layer: l, rule: rule, subject: host}); v.stricter(best) {
			best = v
		}
	}
	switch best.act {
	case Allow:
		return nil
	case Deny:
		o.note(AccessNetwork, Deny, best.rule, "", false)
		return &Error{Code: CodePermissionDenied, Op: "connect", Path: host,
			Err: &Denial{Access: AccessNetwork, Host: host, Scope: best.layer.root, Rule: ruleOf(best.layer, ni, best.rule)}}
	}
	for _, l := range c.layers {
		pol := &l.perms.pol[ni]
		if pol.trivial {
			continue
		}
		act, rule := pol.decideHost(t.Host, t.Port)
		if act != Ask {
			continue
		}
		req := Request{Access: AccessNetwork, Op: "connect", Host: host, Command: command, Scope: l.root, User: s.user, Rule: ruleOf(l, ni, rule)}
		dec, remembered, err := l.ask(ctx, approvalKey{AccessNetwork, host}, req)
		o.note(AccessNetwork, Ask, rule, dec, remembered)
		if err != nil || !dec.Allows() {
			v := verdict{act: Ask, layer: l, rule: rule, subject: host}
			return s.refused("connect", AccessNetwork, host, "", v, "", dec, remembered, err)
		}
	}
	return nil
}

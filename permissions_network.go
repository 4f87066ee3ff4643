package agentbackend

import (
	"context"
	"errors"
	"log/slog"
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
// has network rules or a logger; when its network rules cannot apply
// (nothing below filters the command's network) it logs that once.
func (s *ScopedBackend) netExec(eo *ExecOptions, command string) {
	strict := s.perms != nil && s.perms.strict[AccessNetwork.index()]
	if !strict && s.logger == nil {
		return
	}
	eo.network = &netGate{s: s, command: command}
	if !strict {
		return
	}
	lb, ok := s.fs.(*LocalBackend)
	if ok && lb.Network() == NetworkNone || ok && lb.netRules != nil {
		return // nothing to reach, or a proxy that asks
	}
	s.unnettedOnce.Do(func() {
		why, log := "the backend is "+string(s.base.Type()), slog.Default()
		if ok {
			why, log = "its network is "+string(lb.Network()), lb.log
		}
		log.Warn("agentbackend: the network rules of this scope's permissions do not apply to its commands, because "+why+"; only an allow-list Network (a filtering proxy) applies them",
			"scope", s.root)
	})
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

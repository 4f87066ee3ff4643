package agentbackend

import (
	"context"
	"strings"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// This file is the enforcement machinery the scope calls (scope.go decides
// when): the chain of permission layers of a scope, path and command
// checks, asking approvers, and the filters of listings and searches.

// permLayer is the permissions of one scope of a chain, with what they
// remember.
type permLayer struct {
	prefix    string // the layer's root relative to the base backend's root ("." for the base root)
	root      string // the layer's root as an absolute path, for requests and denials
	perms     *compiledPermissions
	approver  Approver   // its own, or inherited from an enclosing layer
	denyPaths []denyRule // the Deny rules of file accesses, for exec arguments
	approvals approvals
}

// denyRule is a Deny rule of a file access.
type denyRule struct {
	access Access
	rule   *compiledRule
}

// permChain is every permission layer a scope is under, outermost first.
// A scope without permissions has a nil chain: no check costs anything.
type permChain struct {
	layers []*permLayer
	// strict says, per access, whether some layer's policy can answer other
	// than Allow; the others need no check at all.
	strict   [numAccesses]bool
	execArgs bool // some layer has a Deny rule for a file access
}

// extend returns the chain of a scope made below a scope with chain c (nil
// for none) with its own permissions p (nil for none). prefix and root are
// the new scope's.
func (c *permChain) extend(p *Permissions, prefix, root string) (*permChain, error) {
	if p == nil {
		return c, nil
	}
	cp, err := compilePermissions(p)
	if err != nil {
		return nil, err
	}
	approver := cp.approver
	if approver == nil && c != nil {
		approver = c.layers[len(c.layers)-1].approver
	}
	if cp.trivial && cp.approver == nil {
		return c, nil // allows everything and has no approver of its own to hand down
	}
	l := &permLayer{prefix: prefix, root: root, perms: cp, approver: approver}
	for i := range AccessExec.index() {
		pol := &cp.pol[i]
		for j := range pol.rules {
			// A catch-all ("**", "*") would deny every command with an
			// argument; the exec policy governs that.
			if r := &pol.rules[j]; r.Action == Deny && r.glob.hasLiteral() {
				l.denyPaths = append(l.denyPaths, denyRule{allAccesses[i], r})
			}
		}
	}
	n := &permChain{}
	if c != nil {
		*n = *c
		n.layers = append([]*permLayer(nil), c.layers...)
	}
	n.layers = append(n.layers, l)
	for i := range numAccesses {
		n.strict[i] = n.strict[i] || !cp.pol[i].trivial
	}
	n.execArgs = n.execArgs || len(l.denyPaths) > 0
	return n, nil
}

// layerPath returns in (relative to the base root) as layer l matches it:
// relative to the layer's root, "" for the root itself. ok is false when
// in lies outside the layer.
func layerPath(prefix, in string) (string, bool) {
	switch {
	case prefix == ".":
		if in == "." {
			return "", true
		}
		return in, true
	case in == prefix:
		return "", true
	case len(in) > len(prefix) && in[len(prefix)] == '/' && in[:len(prefix)] == prefix:
		return in[len(prefix)+1:], true
	}
	return "", false
}

// verdict is the strictest answer of a chain for one subject.
type verdict struct {
	act     Action
	layer   *permLayer
	rule    *compiledRule // nil: the layer's default
	subject string        // the path (as the layer sees it) or the command piece
	outside bool          // the path leaves a layer (through a link)
}

// stricter reports whether v should replace w.
func (v verdict) stricter(w verdict) bool { return v.act.rank() > w.act.rank() }

// decidePath returns the strictest answer of every layer for access a to
// in (relative to the base root).
func (c *permChain) decidePath(a Access, in string) verdict {
	best := verdict{act: Allow}
	i := a.index()
	for _, l := range c.layers {
		pol := &l.perms.pol[i]
		if pol.trivial {
			continue
		}
		sub, ok := layerPath(l.prefix, in)
		if !ok {
			return verdict{act: Deny, layer: l, subject: in, outside: true}
		}
		act, rule := pol.decide(sub, false)
		if v := (verdict{act: act, layer: l, rule: rule, subject: sub}); v.stricter(best) {
			best = v
			if act == Deny {
				return best
			}
		}
	}
	return best
}

// opCheck is what one operation's permission checks leave for its log
// entry: the most notable decision taken.
type opCheck struct{ rec PermissionRecord }

// note records a decision when it is more notable than the one recorded.
func (o *opCheck) note(a Access, act Action, rule *compiledRule, dec Decision, remembered bool) {
	if o == nil || (o.rec.Access != "" && act.rank() < o.rec.Action.rank()) {
		return
	}
	o.rec = PermissionRecord{Access: a, Action: act, Decision: dec, Remembered: remembered}
	if rule != nil {
		o.rec.Rule = rule.Pattern
	}
}

// pathCheck is one path an operation touches and the access it needs.
type pathCheck struct {
	access Access
	in     string // relative to the base root
	p      string // as the caller gave it
	other  string // the other path of a rename, as the caller gave it, for requests
}

// checkPath checks one access of an operation to a path and returns the
// real path (relative to the base root) it leads to, asking approvers when
// a rule says so. It fails with PERMISSION_DENIED, APPROVAL_REQUIRED, or
// PATH_ESCAPE_ATTEMPT for a link leading out of a layer.
// judgesRealPath reports whether checkPath judges the real path (links
// resolved) for access a, and returns it: the operation must then act on
// that path, following no link (see linkFreeFS).
func (s *ScopedBackend) judgesRealPath(a Access) bool {
	return s.perms != nil && s.perms.strict[a.index()] && s.links != nil
}

func (s *ScopedBackend) checkPath(ctx context.Context, op string, pc pathCheck, o *opCheck) (string, error) {
	c := s.perms
	if !c.strict[pc.access.index()] {
		return pc.in, nil
	}
	v := c.decidePath(pc.access, pc.in)
	if v.act == Deny {
		return "", s.denied(op, pc, v, "", o)
	}
	real := pc.in
	if s.links != nil {
		r, err := s.realIn(ctx, pc.in)
		if err != nil {
			return "", withPath(err, pc.in, pc.p)
		}
		if r != pc.in {
			real = r
			rv := c.decidePath(pc.access, real)
			if rv.outside {
				return "", errPathEscape(op, pc.p)
			}
			if rv.stricter(v) {
				v = rv
			}
			if v.act == Deny {
				return "", s.denied(op, pc, v, real, o)
			}
		}
	}
	if v.act == Allow {
		return real, nil
	}
	return real, s.askPath(ctx, op, pc, real, o)
}

// askPath asks every layer whose answer for the spelled or the real path
// is Ask, outermost first, until one refuses.
func (s *ScopedBackend) askPath(ctx context.Context, op string, pc pathCheck, real string, o *opCheck) error {
	i := pc.access.index()
	for _, l := range s.perms.layers {
		pol := &l.perms.pol[i]
		if pol.trivial {
			continue
		}
		sub, _ := layerPath(l.prefix, pc.in)
		act, rule := pol.decide(sub, false)
		realSub := sub
		if real != pc.in {
			realSub, _ = layerPath(l.prefix, real)
			if ract, rrule := pol.decide(realSub, false); ract.rank() > act.rank() {
				act, rule = ract, rrule
			}
		}
		if act != Ask {
			continue
		}
		req := Request{Access: pc.access, Op: op, Path: sub, Scope: l.root, User: s.user, Rule: ruleOf(l, i, rule)}
		if realSub != sub {
			req.Resolved = realSub
		}
		if pc.other != "" {
			req.Target = pc.other
		}
		dec, remembered, err := l.ask(ctx, approvalKey{pc.access, realSub}, req)
		o.note(pc.access, Ask, rule, dec, remembered)
		if err != nil || !dec.Allows() {
			v := verdict{act: Ask, layer: l, rule: rule, subject: sub}
			return s.refused(op, pc.access, pc.p, "", v, req.Resolved, dec, remembered, err)
		}
	}
	return nil
}

// ruleOf returns the rule that decided, or a rule standing for the
// policy's default.
func ruleOf(l *permLayer, access int, r *compiledRule) Rule {
	if r != nil {
		return r.Rule
	}
	return Rule{Action: l.perms.pol[access].def}
}

// denied builds the error of a Deny verdict and records it. real is the
// path pc.in leads to through links ("" or pc.in when none).
func (s *ScopedBackend) denied(op string, pc pathCheck, v verdict, real string, o *opCheck) error {
	o.note(pc.access, Deny, v.rule, "", false)
	d := &Denial{Access: pc.access, Path: v.subject, Scope: v.layer.root, Rule: ruleOf(v.layer, pc.access.index(), v.rule)}
	if real != "" && real != pc.in {
		d.Path, _ = layerPath(v.layer.prefix, pc.in)
		d.Resolved, _ = layerPath(v.layer.prefix, real)
	}
	return &Error{Code: CodePermissionDenied, Op: op, Path: pc.p, Err: d}
}

// refused builds the error of an Ask that was not allowed: refused by the
// approver (now or remembered), failed, cancelled, or with nobody to ask.
func (s *ScopedBackend) refused(op string, a Access, p, command string, v verdict, resolved string, dec Decision, remembered bool, err error) error {
	d := &Denial{Access: a, Path: v.subject, Resolved: resolved, Command: command, Scope: v.layer.root,
		Rule: ruleOf(v.layer, a.index(), v.rule), Asked: true, Decision: dec, Remembered: remembered, Err: err}
	switch {
	case a == AccessNetwork:
		d.Host, d.Path = p, ""
	case command != "":
		d.Path = ""
	}
	code := CodePermissionDenied
	if err == errTooManyQuestions {
		d.Asked, d.Decision = false, "" // refused without asking
	}
	if err == errNoApprover {
		d.Err, d.Asked, d.Decision = nil, false, ""
		if v.layer.perms.fallback == FallbackError {
			code = CodeApprovalRequired
		}
	}
	return &Error{Code: code, Op: op, Path: p, Command: command, Err: d}
}

// checkExec checks a command line against the exec policies and, as a
// speed bump, its path-like words against the Deny rules of file accesses.
// opts is the caller's (its Cwd as given, relative to the scope root). Exec
// and Start (background processes) both call it, so a command gets the same
// answer whichever way it runs. o may be nil.
func (s *ScopedBackend) checkExec(ctx context.Context, op, command string, opts *ExecOptions, o *opCheck) error {
	c := s.perms
	if c == nil || (!c.strict[AccessExec.index()] && !c.execArgs) || strings.TrimSpace(command) == "" {
		return nil
	}
	pieces := splitCommand(command)
	best := verdict{act: Allow}
	ei := AccessExec.index()
	if c.strict[ei] {
		for _, l := range c.layers {
			pol := &l.perms.pol[ei]
			if pol.trivial {
				continue
			}
			for _, pc := range pieces {
				act, rule := pol.decide(pc.text, true)
				if v := (verdict{act: act, layer: l, rule: rule, subject: pc.text}); v.stricter(best) {
					best = v
				}
			}
			if len(pieces) == 0 { // only comments: the default decides
				if v := (verdict{act: pol.def, layer: l}); v.stricter(best) {
					best = v
				}
			}
		}
	}
	if best.act == Deny {
		return s.execDenied(op, command, best, "", AccessExec, o)
	}
	if c.execArgs {
		if err := s.checkExecArgs(op, command, pieces, opts, o); err != nil {
			return err
		}
	}
	if best.act == Allow {
		return nil
	}
	for _, l := range c.layers {
		pol := &l.perms.pol[ei]
		if pol.trivial {
			continue
		}
		v := verdict{act: Allow}
		for _, pc := range pieces {
			act, rule := pol.decide(pc.text, true)
			if w := (verdict{act: act, layer: l, rule: rule, subject: pc.text}); w.stricter(v) {
				v = w
			}
		}
		if v.act != Ask {
			continue
		}
		req := Request{Access: AccessExec, Op: op, Command: command, Scope: l.root, User: s.user, Rule: ruleOf(l, ei, v.rule)}
		dec, remembered, err := l.ask(ctx, approvalKey{AccessExec, command}, req)
		o.note(AccessExec, Ask, v.rule, dec, remembered)
		if err != nil || !dec.Allows() {
			return s.refused(op, AccessExec, "", command, v, "", dec, remembered, err)
		}
	}
	return nil
}

// checkExecArgs denies a command whose path-like words hit a Deny rule of
// a file access.
func (s *ScopedBackend) checkExecArgs(op, command string, pieces []cmdPiece, opts *ExecOptions, o *opCheck) error {
	cwd := "."
	if opts != nil && opts.Cwd != "" {
		rel, err := resolve(s.root, op, opts.Cwd)
		if err != nil {
			return err
		}
		cwd = rel
	}
	for _, pc := range pieces {
		for _, w := range pathWords(pc.words) {
			p := w
			switch {
			case w == "~":
				p = cwd
			case strings.HasPrefix(w, "~/"):
				p = pathjail.JoinRel(cwd, w[2:])
			case !strings.HasPrefix(w, "/"):
				p = pathjail.JoinRel(cwd, w)
			}
			rel, ok := pathjail.Resolve(s.root, p)
			if !ok {
				continue // leaves the scope: not a workspace path
			}
			in := pathjail.JoinRel(s.prefix, rel)
			for _, l := range s.perms.layers {
				sub, ok := layerPath(l.prefix, in)
				if !ok {
					continue
				}
				for _, r := range l.denyPaths {
					if r.rule.glob.match(sub) {
						v := verdict{act: Deny, layer: l, rule: r.rule, subject: sub}
						return s.execDenied(op, command, v, w, r.access, o)
					}
				}
			}
		}
	}
	return nil
}

// execDenied builds the error of a denied command.
func (s *ScopedBackend) execDenied(op, command string, v verdict, arg string, access Access, o *opCheck) error {
	o.note(AccessExec, Deny, v.rule, "", false)
	d := &Denial{Access: access, Command: command, Scope: v.layer.root, Rule: ruleOf(v.layer, access.index(), v.rule)}
	if arg != "" {
		d.Argument, d.Path = arg, v.subject
	}
	return &Error{Code: CodePermissionDenied, Op: op, Command: command, Err: d}
}

// AccessDenied reports whether b is a scope whose permissions deny every
// operation needing access a, whatever its path or command (in some layer,
// the policy of a is Deny with no rule that could allow or ask). Tool
// servers use it to leave out tools that could never succeed, such as exec
// under ReadOnlyPermissions. Other backends deny nothing: false.
func AccessDenied(b FileBackend, a Access) bool {
	s, ok := b.(*ScopedBackend)
	return ok && s.perms.deniesAll(a)
}

// deniesAll reports whether some layer of c denies every access a.
func (c *permChain) deniesAll(a Access) bool {
	if c == nil || a.index() < 0 {
		return false
	}
	for _, l := range c.layers {
		if l.perms.pol[a.index()].def == Deny && l.perms.pol[a.index()].allDeny() {
			return true
		}
	}
	return false
}

// allDeny reports whether every rule denies.
func (p *compiledPolicy) allDeny() bool {
	for i := range p.rules {
		if p.rules[i].Action != Deny {
			return false
		}
	}
	return true
}

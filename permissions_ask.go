package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Denial is the cause of a PERMISSION_DENIED (or APPROVAL_REQUIRED) error:
// which access was refused, to what, by which rule and why. Get it with
// errors.As; its text is the second half of the error's message.
type Denial struct {
	Access Access // the access refused
	// Path is the path as the deciding scope's rules saw it: relative to
	// that scope's root (Scope), "" for the root itself. For a command
	// denied because of one of its words, the path that word names.
	Path string
	// Resolved is the real path Path leads to through symbolic links, when
	// that is what a rule matched.
	Resolved string
	Command  string // the command line, for exec
	Argument string // the word of the command that named a denied path
	Host     string // the host and port asked for, for network
	// Rule is the deciding rule; its Pattern is empty when the policy's
	// default decided (Action then says what the default is).
	Rule  Rule
	Scope string // the root directory of the scope whose rules decided
	// Asked is true when an approver was asked (or its earlier "always"
	// answer applied) and did not allow; Decision is its answer and
	// Remembered says it was remembered.
	Asked      bool
	Decision   Decision // the approver's answer, when Asked
	Remembered bool     // the answer was an earlier "always"
	// Err is why asking failed: the approver's error, or the context's
	// when it ended during the approval (errors.Is(err, context.Canceled)
	// holds for the whole error then).
	Err error
}

// Error says why the access was refused.
func (d *Denial) Error() string {
	var sb strings.Builder
	switch {
	case d.Argument != "" && d.Argument == d.Path:
		fmt.Fprintf(&sb, "argument %q: ", d.Argument)
	case d.Argument != "":
		fmt.Fprintf(&sb, "argument %q names %s, and ", d.Argument, displayPath(d.Path))
	}
	if d.Resolved != "" {
		fmt.Fprintf(&sb, "%s leads to %s through a symbolic link, and ", displayPath(d.Path), displayPath(d.Resolved))
	}
	rule := fmt.Sprintf("rule %q", d.Rule.Pattern)
	if d.Rule.Pattern == "" {
		rule = "the default " + string(d.Access) + " policy"
	}
	switch {
	case errors.Is(d.Err, errTooManyQuestions):
		fmt.Fprintf(&sb, "%s asks for approval, and it was refused without asking: %v", rule, d.Err)
	case d.Err != nil && errors.Is(d.Err, context.Canceled), d.Err != nil && errors.Is(d.Err, context.DeadlineExceeded):
		fmt.Fprintf(&sb, "%s asks for approval, and the approval was cancelled: %v", rule, d.Err)
	case d.Err != nil:
		fmt.Fprintf(&sb, "%s asks for approval, and asking failed: %v", rule, d.Err)
	case d.Asked && d.Remembered:
		fmt.Fprintf(&sb, "%s asks for approval, and it was refused for good earlier", rule)
	case d.Asked:
		fmt.Fprintf(&sb, "%s asks for approval, and the approver refused", rule)
	case d.Rule.Action == Ask:
		fmt.Fprintf(&sb, "%s asks for approval, and no approver is configured", rule)
	default:
		fmt.Fprintf(&sb, "%s denies %s", rule, d.Access)
	}
	if d.Rule.Reason != "" {
		sb.WriteString(" (" + d.Rule.Reason + ")")
	}
	return sb.String()
}

// Unwrap returns why asking failed, if it did.
func (d *Denial) Unwrap() error { return d.Err }

// errNoApprover marks an Ask that nobody could answer.
var errNoApprover = errors.New("no approver")

// approvalKey is what an answer is about: an access to a path (relative to
// the asking layer's root, "" for the root), for exec a command line, for
// network a host and port.
type approvalKey struct {
	access Access
	target string
}

// maxHostQuestions bounds the questions about hosts that wait for a
// layer's approver at once. A command opens connections to as many names
// as it likes, each a question (the proxy serves 256 connections at once);
// past this bound more names are refused without asking, so a hostile
// command cannot bury the person answering under questions.
const maxHostQuestions = 8

// errTooManyQuestions refuses a host past maxHostQuestions.
var errTooManyQuestions = fmt.Errorf("%d questions about other hosts are waiting for the approver already", maxHostQuestions)

// approvals holds a layer's remembered answers and its approvals in flight.
type approvals struct {
	mu        sync.Mutex
	always    map[approvalKey]Decision // AllowAlways or DenyAlways
	flights   map[approvalKey]*flight
	hostAsked int // flights about hosts (AccessNetwork)
}

// flight is one Approve call that callers with the same key wait on.
type flight struct {
	done      chan struct{}
	dec       Decision
	err       error
	abandoned bool // the caller that made it gave up (its ctx ended): waiters ask again
}

// remembered returns an "always" answer for key.
func (ap *approvals) remembered(key approvalKey) (Decision, bool) {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	d, ok := ap.always[key]
	return d, ok
}

// ask gets the layer's answer for key: remembered, shared with a call in
// flight, or from a new Approve call. remembered is true for an "always"
// answer given earlier. An error means nobody could answer (errNoApprover)
// or asking failed; the operation is then denied.
func (l *permLayer) ask(ctx context.Context, key approvalKey, req Request) (dec Decision, remembered bool, err error) {
	ap := &l.approvals
	for {
		if err := ctx.Err(); err != nil {
			return DenyOnce, false, err
		}
		ap.mu.Lock()
		if d, ok := ap.always[key]; ok {
			ap.mu.Unlock()
			return d, true, nil
		}
		if l.approver == nil {
			ap.mu.Unlock()
			return "", false, errNoApprover
		}
		if f := ap.flights[key]; f != nil {
			ap.mu.Unlock()
			select {
			case <-f.done:
				if f.abandoned {
					continue // the asker gave up; ask again for ourselves
				}
				return f.dec, false, f.err
			case <-ctx.Done():
				return DenyOnce, false, ctx.Err()
			}
		}
		if key.access == AccessNetwork {
			if ap.hostAsked >= maxHostQuestions {
				ap.mu.Unlock()
				return DenyOnce, false, errTooManyQuestions
			}
			ap.hostAsked++
		}
		f := &flight{done: make(chan struct{})}
		if ap.flights == nil {
			ap.flights = map[approvalKey]*flight{}
		}
		ap.flights[key] = f
		ap.mu.Unlock()
		return l.fly(ctx, key, req, f)
	}
}

// fly makes the Approve call of flight f and hands its answer to the
// waiters. If the approver panics the waiters are released (denied) before
// the panic goes on.
func (l *permLayer) fly(ctx context.Context, key approvalKey, req Request, f *flight) (dec Decision, remembered bool, err error) {
	ap := &l.approvals
	landed := false
	defer func() {
		if !landed {
			ap.land(key, f, DenyOnce, errors.New("the approver panicked"), false)
		}
	}()
	dec, err = l.approver.Approve(ctx, req)
	switch {
	case err == nil && dec != AllowOnce && dec != AllowAlways && dec != DenyOnce && dec != DenyAlways:
		err = fmt.Errorf("the approver answered %q, which is not a Decision", dec)
		dec = DenyOnce
	case err != nil:
		dec = DenyOnce
	}
	abandoned := err != nil && ctx.Err() != nil
	landed = true
	ap.land(key, f, dec, err, abandoned)
	return dec, false, err
}

// land records a finished flight.
func (ap *approvals) land(key approvalKey, f *flight, dec Decision, err error, abandoned bool) {
	ap.mu.Lock()
	delete(ap.flights, key)
	if key.access == AccessNetwork {
		ap.hostAsked--
	}
	if err == nil && (dec == AllowAlways || dec == DenyAlways) {
		if ap.always == nil {
			ap.always = map[approvalKey]Decision{}
		}
		ap.always[key] = dec
	}
	f.dec, f.err, f.abandoned = dec, err, abandoned
	close(f.done)
	ap.mu.Unlock()
}

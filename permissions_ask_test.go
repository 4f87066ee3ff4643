package agentbackend_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	ab "github.com/agentbackend/agentbackend"
)

// askScope returns a memory-backed scope where reading anything under
// ask/ asks approver.
func askScope(t *testing.T, approver ab.Approver, fallback ab.AskFallback) *ab.ScopedBackend {
	t.Helper()
	b := newMemory(t)
	seed(t, b, ".", map[string]string{"ask/a.txt": "a", "ask/b.txt": "b", "free.txt": "f"})
	return permScope(t, b, ".", &ab.Permissions{
		Read:        ab.Policy{Rules: []ab.Rule{{Pattern: "ask/**", Action: ab.Ask, Reason: "private notes"}}},
		Approver:    approver,
		AskFallback: fallback,
	})
}

func TestAskDecisions(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		dec          ab.Decision
		allowed      bool
		callsAfter2  int32 // approver calls after two reads of the same path
		rememberedOK bool
	}{
		{ab.AllowOnce, true, 2, false},
		{ab.DenyOnce, false, 2, false},
		{ab.AllowAlways, true, 1, true},
		{ab.DenyAlways, false, 1, true},
	} {
		t.Run(string(c.dec), func(t *testing.T) {
			a := &countingApprover{dec: c.dec}
			s := askScope(t, a, "")
			for i := range 2 {
				_, err := s.Read(ctx, "ask/a.txt")
				if c.allowed {
					wantAllowed(t, err, "Read")
				} else {
					wantDenied(t, err, "Read")
					var d *ab.Denial
					errors.As(err, &d)
					if !d.Asked || d.Decision != c.dec || d.Remembered != (i == 1 && c.rememberedOK) {
						t.Errorf("read %d: denial %+v", i, d)
					}
				}
			}
			if n := a.calls.Load(); n != c.callsAfter2 {
				t.Errorf("approver called %d times, want %d", n, c.callsAfter2)
			}
			req := a.last.Load()
			if req.Access != ab.AccessRead || req.Op != "read" || req.Path != "ask/a.txt" || req.Rule.Pattern != "ask/**" ||
				req.Rule.Reason != "private notes" || req.Scope != s.RootDir() {
				t.Errorf("request = %+v", req)
			}
			// An "always" is about one path: another still asks.
			s.Read(ctx, "ask/b.txt")
			if n := a.calls.Load(); n != c.callsAfter2+1 {
				t.Errorf("another path: approver called %d times, want %d", n, c.callsAfter2+1)
			}
			// Paths nobody asks about never reach the approver.
			if _, err := s.Read(ctx, "free.txt"); err != nil {
				t.Fatal(err)
			}
			if n := a.calls.Load(); n != c.callsAfter2+1 {
				t.Errorf("free path asked: %d calls", n)
			}
		})
	}
}

// "Always" lives as long as the scope whose rule asked; a new scope with the
// same permissions asks again.
func TestAskRememberedForTheScopesLife(t *testing.T) {
	ctx := context.Background()
	b := newMemory(t)
	seed(t, b, ".", map[string]string{"ask/a.txt": "a"})
	a := &countingApprover{dec: ab.AllowAlways}
	p := &ab.Permissions{Read: ab.Policy{Rules: []ab.Rule{{Pattern: "ask/**", Action: ab.Ask}}}, Approver: a}
	s1 := permScope(t, b, ".", p)
	s1.Read(ctx, "ask/a.txt")
	child, _ := s1.Scope("ask", nil) // shares the layer
	defer child.Close()
	child.Read(ctx, "a.txt")
	if n := a.calls.Load(); n != 1 {
		t.Errorf("child scope asked again: %d calls", n)
	}
	s2 := permScope(t, b, ".", p)
	s2.Read(ctx, "ask/a.txt")
	if n := a.calls.Load(); n != 2 {
		t.Errorf("a new scope did not ask: %d calls", n)
	}
}

func TestAskWithoutApprover(t *testing.T) {
	ctx := context.Background()
	_, err := askScope(t, nil, "").Read(ctx, "ask/a.txt")
	wantDenied(t, err, "Ask without approver")
	if want := `PERMISSION_DENIED: read ask/a.txt: rule "ask/**" asks for approval, and no approver is configured (private notes)`; err.Error() != want {
		t.Errorf("message %q\nwant    %q", err, want)
	}
	_, err = askScope(t, nil, ab.FallbackError).Read(ctx, "ask/a.txt")
	if !errors.Is(err, ab.ErrApprovalRequired) || errors.Is(err, ab.ErrPermissionDenied) {
		t.Errorf("FallbackError: %v, want APPROVAL_REQUIRED", err)
	}
	var d *ab.Denial
	if !errors.As(err, &d) || d.Rule.Pattern != "ask/**" {
		t.Errorf("APPROVAL_REQUIRED carries %+v", d)
	}
}

// A cancelled approval is a denial wrapping the context's error; an
// approver's error is a denial wrapping it.
func TestAskCancelledAndFailing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	s := askScope(t, ab.ApproverFunc(func(ctx context.Context, _ ab.Request) (ab.Decision, error) {
		close(started)
		<-ctx.Done()
		return ab.AllowOnce, ctx.Err()
	}), "")
	go func() { <-started; cancel() }()
	_, err := s.Read(ctx, "ask/a.txt")
	wantDenied(t, err, "cancelled approval")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not wrap context.Canceled", err)
	}
	// A context already done never reaches the approver.
	_, err = askScope(t, ab.ApproverFunc(func(context.Context, ab.Request) (ab.Decision, error) {
		t.Error("approver called with a done context")
		return ab.AllowOnce, nil
	}), "").Read(ctx, "ask/a.txt")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ab.ErrPermissionDenied) {
		t.Errorf("done context: %v", err)
	}
	boom := errors.New("chat UI unreachable")
	_, err = askScope(t, ab.ApproverFunc(func(context.Context, ab.Request) (ab.Decision, error) {
		return ab.AllowOnce, boom
	}), "").Read(context.Background(), "ask/a.txt")
	if !errors.Is(err, boom) || !errors.Is(err, ab.ErrPermissionDenied) {
		t.Errorf("failing approver: %v", err)
	}
	_, err = askScope(t, ab.ApproverFunc(func(context.Context, ab.Request) (ab.Decision, error) {
		return "sure", nil
	}), "").Read(context.Background(), "ask/a.txt")
	wantDenied(t, err, "an unknown decision")
}

// Concurrent asks for the same key share one approver call, whose answer
// (once or always) they all get; different keys are asked separately.
func TestAskConcurrentSameKey(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, dec := range []ab.Decision{ab.AllowOnce, ab.DenyOnce, ab.AllowAlways} {
		t.Run(string(dec), func(t *testing.T) {
			ctx := context.Background()
			var calls atomic.Int32
			release := make(chan struct{})
			s := askScope(t, ab.ApproverFunc(func(ctx context.Context, _ ab.Request) (ab.Decision, error) {
				calls.Add(1)
				select {
				case <-release:
				case <-ctx.Done():
				}
				return dec, nil
			}), "")
			const n = 16
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() { _, errs[i] = s.Read(ctx, "ask/a.txt") })
			}
			for calls.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // let the others join the call in flight
			close(release)
			wg.Wait()
			if c := calls.Load(); c != 1 {
				t.Errorf("%d concurrent reads made %d approver calls, want 1", n, c)
			}
			for i, err := range errs {
				if got := err == nil; got != dec.Allows() {
					t.Errorf("reader %d: %v under %s", i, err, dec)
				}
			}
			// Afterwards, a once-decision is forgotten: the next read asks.
			s.Read(ctx, "ask/a.txt")
			want := int32(2)
			if dec == ab.AllowAlways {
				want = 1
			}
			if c := calls.Load(); c != want {
				t.Errorf("after the flight: %d calls, want %d", c, want)
			}
		})
	}
	t.Run("different-keys", func(t *testing.T) {
		a := &countingApprover{dec: ab.AllowOnce}
		s := askScope(t, a, "")
		var wg sync.WaitGroup
		for _, p := range []string{"ask/a.txt", "ask/b.txt"} {
			wg.Go(func() { s.Read(context.Background(), p) })
		}
		wg.Wait()
		if c := a.calls.Load(); c != 2 {
			t.Errorf("two paths made %d calls, want 2", c)
		}
	})
}

// A waiter whose context ends is denied alone; when the caller that made
// the approver call gives up, the waiters ask again.
func TestAskConcurrentCancellation(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var calls atomic.Int32
	first := make(chan struct{})
	release := make(chan struct{})
	s := askScope(t, ab.ApproverFunc(func(ctx context.Context, _ ab.Request) (ab.Decision, error) {
		if calls.Add(1) == 1 {
			close(first)
			<-ctx.Done() // the first asker gives up
			return ab.DenyOnce, ctx.Err()
		}
		<-release
		return ab.AllowOnce, nil
	}), "")
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	waiterCtx, cancelWaiter := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var leaderErr, waiterErr, patientErr error
	wg.Go(func() { _, leaderErr = s.Read(leaderCtx, "ask/a.txt") })
	<-first
	wg.Go(func() { _, waiterErr = s.Read(waiterCtx, "ask/a.txt") })
	wg.Go(func() { _, patientErr = s.Read(context.Background(), "ask/a.txt") })
	time.Sleep(50 * time.Millisecond)
	cancelWaiter() // gives up while waiting: denied, alone
	time.Sleep(20 * time.Millisecond)
	cancelLeader() // gives up during the call: the patient reader asks again
	for calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if !errors.Is(leaderErr, context.Canceled) || !errors.Is(waiterErr, context.Canceled) {
		t.Errorf("cancelled readers: %v / %v", leaderErr, waiterErr)
	}
	if patientErr != nil {
		t.Errorf("the patient reader: %v, want allowed by the second call", patientErr)
	}
	if c := calls.Load(); c != 2 {
		t.Errorf("%d approver calls, want 2", c)
	}
}

// An approver that panics releases the callers waiting on it.
func TestAskApproverPanics(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	s := askScope(t, ab.ApproverFunc(func(context.Context, ab.Request) (ab.Decision, error) {
		close(entered)
		<-release
		panic("approver bug")
	}), "")
	done := make(chan error)
	go func() {
		defer func() { recover() }()
		s.Read(context.Background(), "ask/a.txt")
	}()
	<-entered
	go func() { _, err := s.Read(context.Background(), "ask/a.txt"); done <- err }()
	time.Sleep(50 * time.Millisecond)
	close(release)
	select {
	case err := <-done:
		wantDenied(t, err, "waiter of a panicking approver")
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter hangs")
	}
}

// Two layers that both ask are both asked, outermost first; a Deny in either
// wins without asking.
func TestAskNestedLayers(t *testing.T) {
	ctx := context.Background()
	b := newMemory(t)
	seed(t, b, ".", map[string]string{"w/x.txt": "x", "w/deny.txt": "d"})
	var order []string
	var mu sync.Mutex
	approver := func(name string) ab.Approver {
		return ab.ApproverFunc(func(_ context.Context, req ab.Request) (ab.Decision, error) {
			mu.Lock()
			order = append(order, name+":"+req.Path)
			mu.Unlock()
			return ab.AllowOnce, nil
		})
	}
	outer := permScope(t, b, ".", &ab.Permissions{Read: ab.Policy{Default: ab.Ask}, Approver: approver("outer")})
	inner, err := outer.Scope("w", &ab.ScopeConfig{Permissions: &ab.Permissions{
		Read: ab.Policy{Default: ab.Ask, Rules: []ab.Rule{{Pattern: "deny.txt", Action: ab.Deny}}}, Approver: approver("inner"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	if _, err := inner.Read(ctx, "x.txt"); err != nil {
		t.Fatal(err)
	}
	_, err = inner.Read(ctx, "deny.txt")
	wantDenied(t, err, "inner Deny")
	if want := []string{"outer:w/x.txt", "inner:x.txt"}; !slices.Equal(order, want) {
		t.Errorf("asked %q, want %q", order, want)
	}
	// A child without an approver of its own uses the nearest enclosing one.
	order = nil
	child, _ := outer.Scope("w", &ab.ScopeConfig{Permissions: &ab.Permissions{Read: ab.Policy{Default: ab.Ask}}})
	defer child.Close()
	if _, err := child.Read(ctx, "x.txt"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"outer:w/x.txt", "outer:x.txt"}; !slices.Equal(order, want) {
		t.Errorf("inherited approver: asked %q, want %q", order, want)
	}
}

// The terminal approver denies without prompting when its input is not a
// terminal, so a non-interactive run never hangs.
func TestTerminalApproverNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "prompt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ta := &ab.TerminalApprover{In: r, Out: f}
	dec, err := ta.Approve(context.Background(), ab.Request{Access: ab.AccessExec, Op: "exec", Command: "make"})
	if dec != ab.DenyOnce || !errors.Is(err, ab.ErrNotTerminal) {
		t.Errorf("Approve on a pipe = %s, %v", dec, err)
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Error("it prompted")
	}
	_, err = askScope(t, ta, "").Read(context.Background(), "ask/a.txt")
	if !errors.Is(err, ab.ErrPermissionDenied) || !errors.Is(err, ab.ErrNotTerminal) {
		t.Errorf("Read through a terminal approver without a terminal: %v", err)
	}
}

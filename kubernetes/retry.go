package kubernetes

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// retryAPI calls fn until it succeeds, fails for a reason that will not
// pass, ctx ends or retryFor has passed, with backoff: an API server that
// is restarting (connection refused) or shedding load (429, 503) is waited
// for, as execs and watches wait for it. Only errors that prove the
// request was not carried out are retried, so that a create is never made
// twice.
func retryAPI(ctx context.Context, retryFor time.Duration, fn func() error) error {
	deadline := time.Now().Add(retryFor)
	delay := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil || !notCarriedOut(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// notCarriedOut reports an API error that proves the request was not
// carried out: the connection was refused, or the server said it is busy.
func notCarriedOut(err error) bool {
	if apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) {
		return true
	}
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &op) && op.Op == "dial"
}
